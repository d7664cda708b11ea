"""Where newtlab keeps its files: ``NEWTLAB_HOME`` (default ``~/.newtlab``).

::

    $NEWTLAB_HOME/
      labs/<lab>/    state of one deployed lab (see ``layout``)
      images/        base images (``~/.newtlab/...`` image paths resolve here)
      cache/         downloads and probe results
"""

from __future__ import annotations

from pathlib import Path

from .plan.nodes import Homes
from .runtime.agent.paths import ensure_private_dir, lab_dir
from .runtime.agent.paths import home as newtlab_home

__all__ = ["ensure_private_dir", "lab_dir", "newtlab_home"]


def homes() -> Homes:
    return Homes(user_home=Path.home(), newtlab_home=newtlab_home())


def labs_dir() -> Path:
    return newtlab_home() / "labs"


def images_dir() -> Path:
    return newtlab_home() / "images"


def cache_dir() -> Path:
    return newtlab_home() / "cache"
