"""`newtlab prune`: orphans of this home listed, removed only with --yes."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newtlab.agent import procs
from newtlab.home import lab_dir, newtlab_home
from specfactory import deployed, linked, run_cli, write_specs

SLEEPER = "import time; time.sleep(60)"


def _prune(*args: str) -> dict[tuple[str, str], str]:
    result = run_cli("prune", "--json", *args)
    assert result.returncode == 0, result.stderr
    return {(o["kind"], o["lab"]): o["detail"] for o in json.loads(result.stdout)["orphans"]}


@pytest.fixture
def ghost() -> Iterator[subprocess.Popen[bytes]]:
    """A VM-tagged process of lab `ghost` in this home, whose state is gone."""
    directory = lab_dir("ghost")
    directory.mkdir(parents=True)
    argv = [sys.executable, "-c", SLEEPER, "-name", "newtlab:ghost:r1"]
    proc = subprocess.Popen(argv, cwd=directory)
    deadline = time.monotonic() + 10
    while "-name" not in (procs.cmdline(proc.pid) or []) and time.monotonic() < deadline:
        time.sleep(0.01)
    (directory / "state.json").unlink(missing_ok=True)
    yield proc
    proc.kill()
    proc.wait()


def _deployed(tmp_path: Path, name: str, status: str) -> None:
    """A lab's state as deploy leaves it, with no process behind it."""
    deployed(write_specs(tmp_path / name, linked(("a:Ethernet0", "b:Ethernet0"))), name, status)


def test_orphans_are_listed_then_removed_with_yes(
    tmp_path: Path, ghost: subprocess.Popen[bytes]
) -> None:
    _deployed(tmp_path, "crashed", "running")  # the machine restarted under it
    _deployed(tmp_path, "parked", "stopped")  # stopped on purpose: kept
    locks = newtlab_home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "gone.lock").write_text("123")
    half = newtlab_home() / "snapshots" / "torn" / "s9"  # a save killed before its record
    half.mkdir(parents=True)
    (half / "r1.qcow2").write_bytes(b"QFI\xfb" + bytes(4096))
    held = os.open(locks / "busy.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # a command working on lab `busy` right now
    try:
        found = _prune()
        assert set(found) == {("processes", "ghost"), ("lab", "crashed"), ("lock", "gone"),
                              ("snapshot", "torn")}  # fmt: skip
        assert found["snapshot", "torn"].startswith("snapshot s9: 0 MiB of disks kept without")
        assert str(ghost.pid) in found["processes", "ghost"]
        assert ghost.poll() is None  # listing touches nothing
        assert _prune("--yes") == found
        assert ghost.wait(timeout=10) is not None
        assert not lab_dir("crashed").exists() and lab_dir("parked").exists()
        assert not (locks / "gone.lock").exists() and (locks / "busy.lock").exists()
        assert not half.exists() and not half.parent.exists()
        assert _prune() == {}
    finally:
        os.close(held)


@pytest.fixture
def runs_from(tmp_path: Path) -> Iterator[Path]:
    """A shipped runtime directory that a live process runs from (on its PYTHONPATH)."""
    runtime = newtlab_home() / "runtime" / "bbbbbbbbbbbbbbbb"
    runtime.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(runtime)}
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER], env=env)
    try:
        yield runtime
    finally:
        proc.kill()
        proc.wait()


def test_unused_caches_are_what_no_process_and_no_overlay_uses(runs_from: Path) -> None:
    from newtlab.agent import caches

    root = newtlab_home()
    old_runtime = root / "runtime" / "aaaaaaaaaaaaaaaa"
    staging = root / "runtime" / ".aaaaaaaaaaaaaaaa.0123abcd"
    used = root / "images" / "cccccccccccccccc" / "base.qcow2"
    unused = root / "images" / "dddddddddddddddd" / "old.qcow2"
    partial = root / "images" / "cccccccccccccccc" / "base.qcow2.part-0123abcd"
    mine = root / "images" / "mine.qcow2"
    for directory in (old_runtime / "newtlink", staging, used.parent, unused.parent):
        directory.mkdir(parents=True)
    for file in (old_runtime / "newtlink" / "a.py", partial, mine, unused):
        file.write_bytes(b"x" * 1000)
    overlay = root / "labs" / "lab1" / "disks" / "r1.qcow2"
    overlay.parent.mkdir(parents=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(used), "1M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(used), "-F", "qcow2",
                    str(overlay)], check=True)  # fmt: skip
    assert caches.backing_file(overlay) == str(used)

    found = {entry["path"]: entry for entry in caches.find()}
    assert sorted(found) == sorted(map(str, [old_runtime, staging, unused, partial]))
    assert found[str(unused)]["bytes"] == 1000 and found[str(unused)]["kind"] == "image"
    assert found[str(old_runtime)]["kind"] == "runtime"

    # Only what is still unused goes; the user's own image is never a cache.
    removed = caches.remove([*found, str(mine), str(used), str(runs_from)])
    assert sorted(removed) == sorted(found)
    assert not old_runtime.exists() and not staging.exists() and not partial.exists()
    assert not unused.parent.exists()  # its digest directory, emptied, went too
    assert mine.exists() and used.exists() and runs_from.exists()
    assert caches.find() == []

    overlay.unlink()  # the lab is gone: its base image is no longer in use
    assert [entry["path"] for entry in caches.find()] == [str(used)]


def test_a_kernel_a_node_boots_directly_is_in_use() -> None:
    from newtlab.agent import caches, files

    images = newtlab_home() / "images" / "eeeeeeeeeeeeeeee"
    images.mkdir(parents=True)
    kernel, initrd = images / "host.vmlinux", images / "host.initrd.gz"
    for file in (kernel, initrd):
        file.write_bytes(b"x" * 100)
    disks = newtlab_home() / "labs" / "lab1" / "disks"
    files.link_boot_file(str(kernel), disks / "r1.kernel")
    files.link_boot_file(str(kernel), disks / "r1.kernel")  # again: replaced, not refused
    assert (disks / "r1.kernel").resolve() == kernel and len(list(disks.iterdir())) == 1
    assert [entry["path"] for entry in caches.find()] == [str(initrd)]
    (disks / "r1.kernel").unlink()
    assert sorted(entry["path"] for entry in caches.find()) == sorted([str(kernel), str(initrd)])
