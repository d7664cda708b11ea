"""Process identity: only the lab's own tagged processes are ever signalled."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import labprocs
from newtlab.agent import procs
from newtlab.agent.paths import lab_dir
from newtlab.locks import lab_lock
from specfactory import run_cli

SLEEPER = "import time, sys; time.sleep(60)"


def _spawn(cwd: Path) -> subprocess.Popen[bytes]:
    """A process whose argv carries a QEMU-style tag (python ignores the extra args),
    running in ``cwd`` as a lab's processes run in its directory."""
    cwd.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-c", SLEEPER, "-name", "newtlab:unitlab:r1,process=x"]
    return subprocess.Popen(argv, cwd=cwd)


@pytest.fixture
def tagged() -> Iterator[subprocess.Popen[bytes]]:
    """A tagged process in this home's directory of ``unitlab``."""
    proc = _spawn(lab_dir("unitlab"))
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
    assert labprocs.vms("unitlab") == {tagged.pid: "r1"}
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
    argv = [sys.executable, "-m", "newtlab.newtlink", "/x/bridge.json", "--lab", "l1"]
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


def test_a_lab_of_the_same_name_under_another_home_is_not_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_home = tmp_path / "other-home"
    stranger = _spawn(other_home / "labs" / "unitlab")  # same tag, another NEWTLAB_HOME
    try:
        deadline = time.monotonic() + 10
        while "-name" not in (procs.cmdline(stranger.pid) or []) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not procs.is_ours(stranger.pid, procs.Tag("qemu", "unitlab", "r1"))
        assert labprocs.vms("unitlab") == {}
        # destroy by name in this home: nothing of the other home is touched
        run_cli("destroy", "unitlab", "--grace", "0")
        assert stranger.poll() is None
        # ... while from its own home it is that lab's VM
        monkeypatch.setenv("NEWTLAB_HOME", str(other_home))
        assert labprocs.vms("unitlab") == {stranger.pid: "r1"}
    finally:
        stranger.kill()
        stranger.wait()


def test_destroy_by_name_stops_this_homes_lab_without_state(
    tagged: subprocess.Popen[bytes],
) -> None:
    result = run_cli("destroy", "unitlab", "--grace", "0")
    assert result.returncode == 0, result.stderr
    assert tagged.wait(timeout=10) is not None
