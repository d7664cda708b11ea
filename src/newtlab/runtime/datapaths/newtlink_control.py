"""The client side of a bridge's control socket (``newtlink.control``), over any stream.

The transport opens the socket (this machine's own, or a server's through its
SSH connection); the talk is the same either way.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

from ...errors import RuntimeFailure
from ..transports.base import Streams

PCAP_HEADER = 24
RECORD = struct.Struct("<IIII")


async def ask(streams: Streams, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request on a connection opened for it; its answer (RuntimeFailure with
    the bridge's reason if it refused). The connection is closed after."""
    _, writer = streams
    try:
        return await _ask(streams, request)
    finally:
        writer.close()


async def capture(streams: Streams, request: dict[str, Any], sink: Callable[[bytes], None]) -> None:
    """Ask for a capture and give ``sink`` the pcap stream in whole records only, so
    what it wrote is a valid file whenever the capture stops. The connection is closed
    after."""
    reader, writer = streams
    try:
        await _ask(streams, request)
        pending = b""
        header_done = False
        while chunk := await reader.read(1 << 16):
            pending += chunk
            cut = _whole(pending, header_done)
            if cut:
                sink(pending[:cut])
                pending = pending[cut:]
                header_done = True
    finally:
        writer.close()


async def _ask(streams: Streams, request: dict[str, Any]) -> dict[str, Any]:
    reader, writer = streams
    writer.write(json.dumps(request).encode() + b"\n")
    line = await reader.readline()
    try:
        answer: dict[str, Any] = json.loads(line)
    except ValueError:
        raise RuntimeFailure("the bridge closed its control connection without an answer") from None
    if not answer.get("ok"):
        raise RuntimeFailure(f"bridge: {answer.get('error', answer)}")
    return answer


def _whole(data: bytes, header_done: bool) -> int:
    """How much of ``data`` is the file header (first) and whole records."""
    pos = 0
    if not header_done:
        if len(data) < PCAP_HEADER:
            return 0
        pos = PCAP_HEADER
    while len(data) - pos >= RECORD.size:
        length = RECORD.unpack_from(data, pos)[2]
        if len(data) - pos - RECORD.size < length:
            break
        pos += RECORD.size + length
    return pos
