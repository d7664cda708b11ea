"""One lock per lab, so two commands never change the same lab at once."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import LabStateError
from .home import ensure_private_dir, newtlab_home


@contextmanager
def lab_lock(name: str, wait: float = 5.0) -> Iterator[None]:
    """Hold the lab's lock (``NEWTLAB_HOME/locks/<lab>.lock``) for the block.

    The lock lives outside the lab directory because destroy removes that.
    """
    path = ensure_private_dir(newtlab_home() / "locks") / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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
