"""The client side of a bridge's control socket (``newtlink.control``), over any stream.

A ``LocalHost`` opens the socket itself; a ``RemoteHost`` reaches it through
its SSH connection (a forwarded Unix socket). Both then talk the same way.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import RuntimeFailure

PCAP_HEADER = 24
RECORD = struct.Struct("<IIII")


class Reader(Protocol):
    async def readline(self) -> bytes: ...
    async def read(self, n: int = -1) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


def no_bridge(host: str, lab: str, exc: BaseException) -> str:
    return (
        f"{host}: lab {lab}'s bridge does not answer on its control socket ({exc}) — "
        f"`newtlab repair {lab}` starts it again"
    )


async def ask(streams: tuple[Reader, Writer], request: dict[str, Any]) -> dict[str, Any]:
    """Send one request on a connection opened for it; its answer (RuntimeFailure with
    the bridge's reason if it refused). The connection is closed after."""
    reader, writer = streams
    try:
        return await _ask(reader, writer, request)
    finally:
        writer.close()


async def capture(
    streams: tuple[Reader, Writer], request: dict[str, Any], sink: Callable[[bytes], None]
) -> None:
    """Ask for a capture and give ``sink`` the pcap stream in whole records only, so
    what it wrote is a valid file whenever the capture stops. The connection is closed
    after."""
    reader, writer = streams
    try:
        await _ask(reader, writer, request)
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


async def _ask(reader: Reader, writer: Writer, request: dict[str, Any]) -> dict[str, Any]:
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
