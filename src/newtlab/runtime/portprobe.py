"""Are the lab's ports free? Local half: try to bind each one as its user will."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

import psutil

from ..plan.ports import PortUse


def local_addresses() -> set[str]:
    addrs = {"127.0.0.1", "0.0.0.0", "localhost"}
    for entries in psutil.net_if_addrs().values():
        addrs.update(e.address for e in entries if e.family == socket.AF_INET)
    return addrs


def port_in_use(bind: str, port: int) -> str | None:
    """None if ``bind:port`` can be listened on (with SO_REUSEADDR, as QEMU does), else why."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind, port))
            sock.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "in use"
            return exc.strerror or str(exc)
    return None


def probe_local(uses: Iterable[PortUse]) -> list[str]:
    """One line per conflict: ``<purpose>: port N in use``."""
    conflicts = []
    for use in uses:
        problem = port_in_use(use.bind, use.port)
        if problem:
            conflicts.append(f"{use.purpose}: port {use.port} {problem}")
    return conflicts
