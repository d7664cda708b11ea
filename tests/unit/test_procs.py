"""Process identity: only the lab's own tagged processes are ever signalled."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from newtlab.locks import lab_lock
from newtlab.runtime.agent import procs

SLEEPER = "import time, sys; time.sleep(60)"


@pytest.fixture
def tagged() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose argv carries a QEMU-style tag (python ignores the extra args)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SLEEPER, "-name", "newtlab:unitlab:r1,process=x"]
    )
    try:
        deadline = time.monotonic() + 10  # until it has exec'd: before, it shows pytest's argv
        while "-name" not in (procs.cmdline(proc.pid) or []) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_tag_finds_and_identifies(tagged: subprocess.Popen[bytes]) -> None:
    assert procs.is_ours(tagged.pid, procs.Tag("qemu", "unitlab", "r1"))
    assert not procs.is_ours(tagged.pid, procs.Tag("qemu", "unitlab", "r2"))
    assert not procs.is_ours(tagged.pid, procs.Tag("qemu", "otherlab"))
    assert procs.lab_vms("unitlab") == {tagged.pid: "r1"}
    assert tagged.pid in procs.find(procs.Tag("qemu", "unitlab"))


def test_terminate_refuses_a_process_that_is_not_ours() -> None:
    stranger = subprocess.Popen([sys.executable, "-c", SLEEPER])
    try:
        assert procs.terminate(stranger.pid, procs.Tag("qemu", "unitlab", "r1"), grace=0.5)
        assert stranger.poll() is None  # untouched: a reused PID is never killed
    finally:
        stranger.kill()
        stranger.wait()


def test_terminate_stops_our_process(tagged: subprocess.Popen[bytes]) -> None:
    assert procs.terminate(tagged.pid, procs.Tag("qemu", "unitlab", "r1"), grace=5)
    assert tagged.wait(timeout=5) is not None


def test_newtlink_tag() -> None:
    argv = [sys.executable, "-m", "newtlab.runtime.newtlink", "/x/bridge.json", "--lab", "l1"]
    assert procs.Tag("newtlink", "l1").matches(argv)
    assert not procs.Tag("newtlink", "l2").matches(argv)
    assert not procs.Tag("newtlink", "l1").matches(
        [sys.executable, "-m", "http.server", "--lab", "l1"]
    )


def test_lab_lock_is_exclusive() -> None:
    with lab_lock("busy"):
        code = (
            "import sys\nfrom newtlab.locks import lab_lock\n"
            "from newtlab.errors import LabStateError\n"
            "try:\n    lab_lock('busy', wait=0.3).__enter__()\nexcept LabStateError as e:\n"
            "    print(e); sys.exit(3)\n"
        )
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode == 3 and "is busy" in other.stdout
    with lab_lock("busy", wait=0.3):
        pass
