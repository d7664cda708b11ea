"""newtlab — realise newtron network topologies as connected QEMU virtual machines."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import NewtlabError
from .lab import Lab

__all__ = ["Lab", "NewtlabError", "__version__"]
