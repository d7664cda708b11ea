"""Where a host keeps newtlab's files: ``NEWTLAB_HOME``, default ``~/.newtlab``.

The same rule on every machine, so a server's files sit where its own
newtlab would put them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def home() -> Path:
    configured = os.environ.get("NEWTLAB_HOME")
    # Absolute: a lab's processes are recognised by their working directory under it.
    return Path(configured).expanduser().absolute() if configured else Path.home() / ".newtlab"


def lab_dir(lab: str) -> Path:
    return home() / "labs" / lab


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700: labs hold keys and passwords."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


# A Unix socket address holds 107 bytes; a deep NEWTLAB_HOME and long names exceed it.
_SOCKET_PATH_MAX = 100


@contextlib.contextmanager
def connectable(path: str | Path) -> Iterator[str]:
    """A path by which to connect to the Unix socket ``path``: itself, or when too long for
    a socket address, the socket's name under an open descriptor of its directory."""
    path = str(path)
    if len(os.fsencode(path)) <= _SOCKET_PATH_MAX:
        yield path
        return
    directory = os.open(os.path.dirname(path), os.O_PATH)
    try:
        yield f"/proc/self/fd/{directory}/{os.path.basename(path)}"
    finally:
        os.close(directory)
