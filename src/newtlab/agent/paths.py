"""Where a host keeps newtlab's files: ``NEWTLAB_HOME``, default ``~/.newtlab``.

The same rule on every machine, so a server's files sit where its own
newtlab would put them.
"""

from __future__ import annotations

import os
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
