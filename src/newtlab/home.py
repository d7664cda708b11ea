"""Where newtlab keeps its files: ``NEWTLAB_HOME`` (default ``~/.newtlab``).

::

    $NEWTLAB_HOME/
      labs/<lab>/    state of one deployed lab (see ``layout``)
      images/        base images (``~/.newtlab/...`` image paths resolve here)
      cache/         downloads and probe results
"""

from __future__ import annotations

import os
from pathlib import Path

from .plan.nodes import Homes


def newtlab_home() -> Path:
    configured = os.environ.get("NEWTLAB_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".newtlab"


def homes() -> Homes:
    return Homes(user_home=Path.home(), newtlab_home=newtlab_home())


def labs_dir() -> Path:
    return newtlab_home() / "labs"


def lab_dir(name: str) -> Path:
    return labs_dir() / name


def images_dir() -> Path:
    return newtlab_home() / "images"


def cache_dir() -> Path:
    return newtlab_home() / "cache"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700: state holds passwords and keys."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path
