"""Capture of a link's frames to a pcap file: off unless configured, free when off.

The pumps hold each read's whole frames in a buffer anyway, so capturing is
one ``write`` per frame from that buffer; a link without capture pays one
attribute check per read. Both directions of a link go to one file, in the
order the bridge reads them (dropped frames included: they were on the wire).
"""

from __future__ import annotations

import struct
import threading
import time
from typing import BinaryIO

from .frames import HEADER, HEADER_SIZE

_GLOBAL = struct.Struct("<IHHiIII")  # magic, version 2.4, tz, sigfigs, snaplen, linktype
_RECORD = struct.Struct("<IIII")  # seconds, microseconds, captured length, original length
MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144


HEADER_BYTES = _GLOBAL.pack(MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)
TAP_BUFFER = 16 << 20  # bytes a live capture may fall behind before it loses frames


def records(data: memoryview) -> tuple[bytes, int]:
    """The pcap records of each frame of ``data`` (whole QEMU-framed frames) and their count."""
    now = time.time()
    seconds, micros = int(now), int((now % 1) * 1_000_000)
    unpack, pack = HEADER.unpack_from, _RECORD.pack
    parts: list[bytes | memoryview] = []
    pos, end = 0, len(data)
    while pos < end:
        (length,) = unpack(data, pos)
        start = pos + HEADER_SIZE
        parts += [pack(seconds, micros, length, length), data[start : start + length]]
        pos = start + length
    return b"".join(parts), len(parts) // 2


class PcapWriter:
    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - open as long as the bridge
        self._file.write(HEADER_BYTES)
        self._file.flush()
        self._lock = threading.Lock()  # the two directions write from two threads

    def write(self, data: memoryview) -> None:
        """Record each frame of ``data`` (whole QEMU-framed frames, back to back)."""
        chunk, _ = records(data)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(chunk)
            self._file.flush()  # so a reader following the file sees frames as they pass

    def close(self) -> None:
        with self._lock:
            self._file.close()


class PcapTap:
    """A live capture: the pumps add records, one reader takes them (``take``).

    A reader that falls more than ``TAP_BUFFER`` behind loses frames (counted)
    instead of holding up the link; ``count`` ends the capture after that many
    frames.
    """

    def __init__(self, count: int = 0) -> None:
        self.remaining = count or -1  # frames still to take; -1: no end
        self.lost = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._ready = threading.Condition()
        self.closed = False

    def write(self, data: memoryview) -> None:
        chunk, frames = records(data)
        with self._ready:
            if self.closed or self.remaining == 0:
                return
            if self._size + len(chunk) > TAP_BUFFER:
                self.lost += frames
                return
            if self.remaining > 0:
                if frames > self.remaining:  # keep exactly the frames asked for
                    chunk, frames = _first(chunk, self.remaining), self.remaining
                self.remaining -= frames
            self._chunks.append(chunk)
            self._size += len(chunk)
            self._ready.notify()

    def take(self, timeout: float) -> bytes | None:
        """Records captured so far (b"" after ``timeout`` with none); None once ended."""
        with self._ready:
            if not self._chunks and not self.closed and self.remaining != 0:
                self._ready.wait(timeout)
            if self._chunks:
                chunk = b"".join(self._chunks)
                self._chunks, self._size = [], 0
                return chunk
            return None if self.closed or self.remaining == 0 else b""

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify()


def _first(chunk: bytes, frames: int) -> bytes:
    """The first ``frames`` records of ``chunk``."""
    pos = 0
    for _ in range(frames):
        pos += _RECORD.size + _RECORD.unpack_from(chunk, pos)[2]
    return chunk[:pos]
