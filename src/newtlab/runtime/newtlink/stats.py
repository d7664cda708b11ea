"""The stats endpoint protocol: connect, read one JSON document, done."""

from __future__ import annotations

import json
import socket
from typing import Any


def query_stats(addr: str, timeout: float = 5.0) -> dict[str, Any]:
    """Stats of a running bridge; ``addr`` is a Unix socket path or ``host:port``."""
    if addr.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: Any = addr
    else:
        host, _, port = addr.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (host if host not in ("", "0.0.0.0") else "127.0.0.1", int(port))
    with sock:
        sock.settimeout(timeout)
        sock.connect(target)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    data: dict[str, Any] = json.loads(b"".join(chunks))
    return data
