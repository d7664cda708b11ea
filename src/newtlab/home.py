"""Where newtlab keeps its files: ``NEWTLAB_HOME`` (default ``~/.newtlab``).

::

    $NEWTLAB_HOME/
      labs/<lab>/    state of one deployed lab (see ``layout``)
      images/        base images (``~/.newtlab/...`` image paths resolve here)
      cache/         downloads and probe results
      snapshots/<lab>/<name>/  lab snapshots (outlive their labs: see ``snapshots``)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .agent import layout
from .agent.paths import ensure_private_dir, lab_dir
from .agent.paths import home as newtlab_home

if TYPE_CHECKING:
    from .plan.nodes import Homes

__all__ = ["ensure_private_dir", "lab_dir", "newtlab_home"]


def homes() -> Homes:
    from .plan.nodes import Homes  # the planner, only for commands that plan

    return Homes(user_home=Path.home(), newtlab_home=newtlab_home())


def labs_dir() -> Path:
    return newtlab_home() / "labs"


def list_labs() -> list[str]:
    """Names of this home's labs that have a state file, sorted (no state is read)."""
    root = labs_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / layout.STATE).is_file())


def has_snapshots() -> bool:
    """Whether this home keeps a snapshot record (without reading one)."""
    root = newtlab_home() / "snapshots"
    return root.is_dir() and any(root.glob("*/*/snapshot.json"))


def images_dir() -> Path:
    return newtlab_home() / "images"


def cache_dir() -> Path:
    return newtlab_home() / "cache"
