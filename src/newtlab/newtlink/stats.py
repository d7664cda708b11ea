"""The stats endpoint protocol: a client connects, reads one JSON document, and the bridge closes.

The same document is served on the Unix socket (local use) and, when
configured, on TCP (a remote orchestrator). ``query_stats`` is the client.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

SCHEMA = 2  # bumped when a field changes meaning or goes away; new fields do not bump it


def document(lab: str, started: float, links: list[dict[str, Any]], restarts: int = 0) -> bytes:
    """``started`` is when this bridge process came up; ``restarts`` how often it was restarted."""
    return json.dumps(
        {
            "schema": SCHEMA,
            "lab": lab,
            "pid": os.getpid(),
            "restarts": restarts,
            "started": started,
            "now": time.time(),
            "links": links,
        }
    ).encode()


def _target(addr: str) -> tuple[int, Any]:
    if addr.startswith("/"):
        return socket.AF_UNIX, addr
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"stats address {addr!r}: expected a path or host:port")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, int(port))


def query_stats(addr: str, timeout: float = 5.0) -> dict[str, Any]:
    """Stats of a running bridge; ``addr`` is a Unix socket path ("/...") or ``host:port``.

    Raises OSError if the bridge cannot be reached, ValueError if the reply is not JSON.
    A bridge listening on every address (``0.0.0.0:P``) is asked on loopback.
    """
    family, target = _target(addr)
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(target)
        chunks = []
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    data = json.loads(b"".join(chunks))
    if not isinstance(data, dict):
        raise ValueError(f"stats from {addr}: not a JSON object")
    return data
