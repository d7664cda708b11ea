"""newtlab — realise newtron network topologies as connected QEMU virtual machines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Lab", "NewtlabError", "__version__"]

if TYPE_CHECKING:
    from .errors import NewtlabError
    from .lab import Lab


def __getattr__(name: str) -> Any:
    # Imported on first use: the newtlink bridge lives in this package and must
    # start without loading the orchestrator (pydantic, asyncssh, ...).
    if name == "Lab":
        from .lab import Lab

        return Lab
    if name == "NewtlabError":
        from .errors import NewtlabError

        return NewtlabError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
