"""QEMU-framed test traffic: every frame carries a sequence number and a CRC."""

from __future__ import annotations

import random
import socket
import struct
import zlib
from collections.abc import Iterator

HEAD = struct.Struct(">I")
META = struct.Struct(">QI")  # sequence, crc32 of the body
MIN_FRAME, MAX_FRAME = 60, 9018


def payload_pool(seed: int, count: int = 64) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(MAX_FRAME - META.size) for _ in range(count)]


def frames(seed: int, count: int, start: int = 0) -> Iterator[bytes]:
    """``count`` framed frames of random sizes 60–9,018 bytes, sequence numbers from ``start``."""
    rng = random.Random(seed)
    pool = payload_pool(seed)
    for seq in range(start, start + count):
        size = rng.randint(MIN_FRAME, MAX_FRAME)
        body = pool[seq % len(pool)][: size - META.size]
        yield HEAD.pack(size) + META.pack(seq, zlib.crc32(body)) + body


def batches(seed: int, count: int, batch: int = 64, start: int = 0) -> Iterator[bytes]:
    """Frames joined into larger writes, so the sender is not the bottleneck."""
    chunk: list[bytes] = []
    for frame in frames(seed, count, start):
        chunk.append(frame)
        if len(chunk) == batch:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


class FrameReader:
    """Parses a byte stream into frames and checks each one."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.frames = 0
        self.bytes = 0
        self.bad = 0
        self.sequences: list[int] = []

    def feed(self, data: bytes) -> None:
        self.buffer += data
        pos = 0
        while len(self.buffer) - pos >= 4:
            (size,) = HEAD.unpack_from(self.buffer, pos)
            if len(self.buffer) - pos - 4 < size:
                break
            frame = bytes(self.buffer[pos + 4 : pos + 4 + size])
            pos += 4 + size
            self.frames += 1
            self.bytes += 4 + size
            if size < META.size or not MIN_FRAME <= size <= MAX_FRAME:
                self.bad += 1
                continue
            seq, crc = META.unpack_from(frame)
            if zlib.crc32(frame[META.size :]) != crc:
                self.bad += 1
                continue
            self.sequences.append(seq)
        del self.buffer[:pos]

    def drain(self, sock: socket.socket, until_frames: int, timeout: float = 30) -> None:
        sock.settimeout(timeout)
        while self.frames < until_frames:
            data = sock.recv(1 << 20)
            if not data:
                break
            self.feed(data)
