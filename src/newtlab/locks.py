"""One lock per lab, so two commands never change the same lab at once.

A lab's lock is ``NEWTLAB_HOME/locks/<lab>.lock``, outside the lab's
directory because destroy removes that; it holds the PID of the command
holding it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import LabStateError
from .home import ensure_private_dir, newtlab_home


def _locks_dir() -> Path:
    return newtlab_home() / "locks"


def lock_path(name: str) -> Path:
    return _locks_dir() / f"{name}.lock"


@contextmanager
def lab_lock(name: str, wait: float = 5.0) -> Iterator[None]:
    """Hold the lab's lock for the block; ``LabStateError`` if another command holds it
    for more than ``wait`` s."""
    ensure_private_dir(_locks_dir())
    fd = os.open(lock_path(name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                    raise LabStateError(
                        f"lab {name!r} is busy: another newtlab command (pid {holder or '?'}) "
                        "is working on it — wait for it to finish"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def locked_labs() -> list[str]:
    """The labs that have a lock file, held or not, sorted."""
    directory = _locks_dir()
    if not directory.is_dir():
        return []
    return sorted(lock.name.removesuffix(".lock") for lock in directory.glob("*.lock"))


def is_held(name: str) -> bool:
    """Some command holds the lab's lock right now."""
    try:
        fd = os.open(lock_path(name), os.O_RDWR)
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


def remove_lock(name: str) -> None:
    """Remove the lab's lock file unless a command holds it."""
    if not is_held(name):
        lock_path(name).unlink(missing_ok=True)
