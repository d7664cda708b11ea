"""`newtlab prune`: orphans of this home listed, removed only with --yes."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newtlab.home import lab_dir, newtlab_home
from newtlab.lab import Lab
from newtlab.runtime.agent import procs
from newtlab.state import LabState, NodeState, save_state
from specfactory import linked, run_cli, write_specs

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
    spec = write_specs(tmp_path / name, linked(("a:Ethernet0", "b:Ethernet0")))
    plan = Lab.load(spec, name=name).plan
    state = LabState(name=name, created=datetime.now(UTC), spec_dir=str(spec), plan=plan,
                     nodes={n.name: NodeState(status=status) for n in plan.nodes})  # type: ignore[arg-type]  # fmt: skip
    lab_dir(name).mkdir(parents=True)
    save_state(state)


def test_orphans_are_listed_then_removed_with_yes(
    tmp_path: Path, ghost: subprocess.Popen[bytes]
) -> None:
    _deployed(tmp_path, "crashed", "running")  # the machine restarted under it
    _deployed(tmp_path, "parked", "stopped")  # stopped on purpose: kept
    locks = newtlab_home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "gone.lock").write_text("123")
    held = os.open(locks / "busy.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # a command working on lab `busy` right now
    try:
        found = _prune()
        assert set(found) == {("processes", "ghost"), ("lab", "crashed"), ("lock", "gone")}
        assert str(ghost.pid) in found["processes", "ghost"]
        assert ghost.poll() is None  # listing touches nothing
        assert _prune("--yes") == found
        assert ghost.wait(timeout=10) is not None
        assert not lab_dir("crashed").exists() and lab_dir("parked").exists()
        assert not (locks / "gone.lock").exists() and (locks / "busy.lock").exists()
        assert _prune() == {}
    finally:
        os.close(held)
