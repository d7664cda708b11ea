"""newtlink: the link bridge between lab VMs.

Standard library only and self-contained (relative imports, nothing else of
newtlab), so this directory can be copied to a server and run there with a
plain ``python3 -m newtlink CONFIG``.
"""

from __future__ import annotations

from .stats import query_stats

__all__ = ["query_stats"]
