"""Synthetic QEMU-framed traffic: every frame carries a sequence number and a CRC.

A frame is ``>I length`` then ``>Q sequence``, ``>I crc32(body)``, body. A
frame that was torn, padded or spliced from two streams fails its CRC, has an
impossible length or breaks the sequence, so a checker sees it.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
import zlib
from collections.abc import Iterator

HEAD = struct.Struct(">I")
META = struct.Struct(">QI")  # sequence, crc32 of the body
MIN_FRAME, MAX_FRAME = 60, 9018


class Frames:
    """Deterministic frames of random sizes, built from a pool of random bytes."""

    def __init__(self, seed: int, min_size: int = MIN_FRAME, max_size: int = MAX_FRAME) -> None:
        self.rng = random.Random(seed)
        self.min_size, self.max_size = min_size, max_size
        self.pool = self.rng.randbytes(2 * max_size)

    def frame(self, seq: int, size: int | None = None) -> bytes:
        if size is None:
            size = self.rng.randint(self.min_size, self.max_size)
        start = (seq * 7919) % self.max_size
        body = self.pool[start : start + size - META.size]
        return HEAD.pack(size) + META.pack(seq, zlib.crc32(body)) + body

    def batches(self, start: int, count: int, batch_bytes: int = 1 << 20) -> Iterator[bytes]:
        """Frames ``start .. start+count-1`` joined into writes of about ``batch_bytes``."""
        chunk: list[bytes] = []
        size = 0
        for seq in range(start, start + count):
            frame = self.frame(seq)
            chunk.append(frame)
            size += len(frame)
            if size >= batch_bytes:
                yield b"".join(chunk)
                chunk, size = [], 0
        if chunk:
            yield b"".join(chunk)


class Checker:
    """Parses a received stream into frames and checks every one."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.frames = 0
        self.bytes = 0
        self.bad: list[str] = []
        self.sequences: list[int] = []
        self.eof = False

    def feed(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, end = 0, len(buf)
        view = memoryview(buf)
        try:
            while end - pos >= HEAD.size:
                (size,) = HEAD.unpack_from(buf, pos)
                if not MIN_FRAME <= size <= MAX_FRAME:
                    # Alignment is lost for good: record it and stop parsing.
                    self.bad.append(f"impossible length {size} after {self.frames} frames")
                    pos = end
                    break
                if end - pos - HEAD.size < size:
                    break
                seq, crc = META.unpack_from(buf, pos + HEAD.size)
                with view[pos + HEAD.size + META.size : pos + HEAD.size + size] as body:
                    good = zlib.crc32(body) == crc
                if not good:
                    self.bad.append(f"bad CRC in frame {self.frames} (seq {seq})")
                else:
                    self.sequences.append(seq)
                pos += HEAD.size + size
                self.frames += 1
                self.bytes += HEAD.size + size
        finally:
            view.release()
        del buf[:pos]

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame received so far."""
        return len(self.buffer)

    def drain(self, sock: socket.socket, frames: int, timeout: float = 30) -> None:
        """Receive until ``frames`` frames have arrived in total (or EOF / timeout)."""
        sock.settimeout(timeout)
        while self.frames < frames:
            data = sock.recv(1 << 20)
            if not data:
                self.eof = True
                return
            self.feed(data)


class Receiver:
    """A thread that keeps receiving and checking until stopped or EOF."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.checker = Checker()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # select, not a socket timeout: another thread may be blocked sending on this socket.
        try:
            while not self._stop.is_set():
                if not select.select([self.sock], [], [], 0.1)[0]:
                    continue
                data = self.sock.recv(1 << 20)
                if not data:
                    self.checker.eof = True
                    return
                self.checker.feed(data)
        except OSError as exc:
            self.error = exc

    def stop(self) -> Checker:
        self._stop.set()
        self._thread.join(30)
        return self.checker


def one_frame_each_way(a: socket.socket, z: socket.socket) -> tuple[list[int], list[int]]:
    """A sends frame 0, Z frame 1, at once; the sequences (Z received, A received)."""
    frames = Frames(3)
    a.sendall(frames.frame(0))
    z.sendall(frames.frame(1))
    at_z, at_a = Checker(), Checker()
    at_z.drain(z, 1, timeout=5)
    at_a.drain(a, 1, timeout=5)
    return at_z.sequences, at_a.sequences


def rst_close(sock: socket.socket) -> None:
    """Close with a TCP reset, as a killed process's socket may go."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
