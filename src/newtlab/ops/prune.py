"""``newtlab prune``: what this home left behind, and removing it.

Orphans: a lab's processes with no readable state (its directory was lost),
a lab whose state names processes none of which run and whose nodes were
not stopped on purpose (the machine restarted, or they were killed), a lab
directory with no state, and a lock file of a lab that no longer exists
that nobody holds. A lab is removed as ``destroy`` removes it: processes
stopped by tag, profiles restored, files removed.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from ..errors import LabStateError
from ..home import labs_dir, newtlab_home
from ..plan.model import LOCAL_HOST
from ..runtime.agent import procs
from ..state import load_state

Kind = Literal["processes", "lab", "lock"]


@dataclass(frozen=True)
class Orphan:
    kind: Kind
    lab: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _held(lock: Path) -> bool:
    """Someone holds this lab lock right now."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def find_orphans() -> list[Orphan]:
    """Every orphan of this home on this machine, by lab."""
    running = procs.home_labs()
    root = labs_dir()
    directories = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    orphans = []
    for lab in sorted(set(running) | directories):
        pids = running.get(lab, [])
        try:
            state = load_state(lab)
        except LabStateError:
            state = None
        if state is None:
            if pids:
                shown = ", ".join(map(str, sorted(pids)))
                orphans.append(Orphan("processes", lab, f"pids {shown} run with no readable state"))
            else:
                orphans.append(Orphan("lab", lab, f"{root / lab} has no state"))
            continue
        local_only = {h.name for h in state.plan.hosts} == {LOCAL_HOST}
        stopped = all(node.status == "stopped" for node in state.nodes.values())
        if local_only and not pids and not stopped:
            orphans.append(Orphan("lab", lab, "deployed, but none of its processes runs "
                                  "(the machine restarted, or they were killed)"))  # fmt: skip
    locks = newtlab_home() / "locks"
    for lock in sorted(locks.glob("*.lock")) if locks.is_dir() else []:
        lab = lock.name.removesuffix(".lock")
        if lab not in directories and lab not in running and not _held(lock):
            orphans.append(Orphan("lock", lab, f"{lock}: a lock of a lab that is gone"))
    return orphans


def remove_lock(lab: str) -> None:
    lock = newtlab_home() / "locks" / f"{lab}.lock"
    if not _held(lock):
        lock.unlink(missing_ok=True)
