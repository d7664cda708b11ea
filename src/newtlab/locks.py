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
from .home import ensure_private_dir, lab_dir, newtlab_home


def _locks_dir() -> Path:
    return newtlab_home() / "locks"


def lock_path(name: str) -> Path:
    return _locks_dir() / f"{name}.lock"


def _take(path: Path, name: str, wait: float) -> int:
    """An fd holding the lock at ``path``; ``LabStateError`` after ``wait`` s.

    A lock file is removed with its lab, while held: a command that was waiting on
    the removed file finds it gone once it has the lock, and takes the new one.
    """
    deadline = time.monotonic() + wait
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise LabStateError(
                        f"lab {name!r} is busy: another newtlab command (pid {holder or '?'}) "
                        "is working on it — wait for it to finish"
                    ) from None
                time.sleep(0.1)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def lab_lock(name: str, wait: float = 5.0) -> Iterator[None]:
    """Hold the lab's lock for the block; ``LabStateError`` if another command holds it
    for more than ``wait`` s. A lab that does not exist when the block ends (destroyed,
    a deploy that failed early, a name that never was one) leaves no lock behind."""
    path = ensure_private_dir(_locks_dir()) / f"{name}.lock"
    fd = _take(path, name, wait)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        if not lab_dir(name).exists():
            path.unlink(missing_ok=True)
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
