"""newtlink: the link bridge between lab VMs.

Relays the QEMU ``-netdev socket`` byte stream (4-byte big-endian length +
frame) between the two ends of each link, keeps a VM's neighbour connected
and frame-aligned while that VM restarts, and serves counters as JSON.

Standard library only and self-contained (relative imports, nothing else of
newtlab), so this directory can be copied to a server and run there by a
plain ``python3 -m newtlink CONFIG --lab NAME``.
"""

from __future__ import annotations

from .stats import query_stats

__all__ = ["query_stats"]
