"""Are a lab's ports free here? Try to bind each one as its user will."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable


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


def probe(uses: Iterable[tuple[str, int, str]]) -> list[str]:
    """One line per ``(bind, port, purpose)`` that cannot be listened on: why, with its purpose."""
    conflicts = []
    for bind, port, purpose in uses:
        problem = port_in_use(bind, port)
        if problem:
            conflicts.append(f"{purpose}: port {port} {problem}")
    return conflicts
