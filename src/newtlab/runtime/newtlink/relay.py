"""One link: two sides, a relay thread per connected side, whole frames only.

Each side's thread reads its socket into a 1 MiB buffer, walks the 4-byte
length headers to find the last complete frame, and sends exactly the
complete frames to the other side (or drops them, counting, while the other
side is away — a pulled cable). A partial frame waits in the buffer for its
rest. So the receiver never sees a torn frame: not when the sender dies
mid-frame (its partial frame is never forwarded) and not when a side comes
back (it is only ever sent whole frames). The payload is never copied into
Python objects: ``recv_into`` and ``sendall`` work on one memoryview; only the
tail of at most one incomplete frame moves to the buffer's front.
"""

from __future__ import annotations

import contextlib
import mmap
import socket
import struct
import threading
import time
from typing import Any

from .config import LinkConfig
from .pcap import PcapWriter

BUFFER_SIZE = 1 << 20
MAX_FRAME = 256 * 1024  # QEMU frames are at most 64 KiB; larger means a corrupt stream
_HEADER = struct.Struct(">I")
SIDES = ("a", "z")


class CorruptStream(Exception):
    pass


class Direction:
    """Counters of traffic read from one side."""

    __slots__ = ("bytes", "dropped_bytes", "dropped_frames", "frames")

    def __init__(self) -> None:
        self.bytes = self.frames = self.dropped_bytes = self.dropped_frames = 0


class Link:
    def __init__(self, config: LinkConfig) -> None:
        self.config = config
        self.socks: dict[str, socket.socket | None] = {"a": None, "z": None}
        self.accepts = {"a": 0, "z": 0}
        self.refused = {"a": 0, "z": 0}
        self.sessions = 0
        self.read = {"a": Direction(), "z": Direction()}  # keyed by the side read from
        self.last_activity = 0.0
        self.pcap = PcapWriter(config.pcap) if config.pcap else None
        self._lock = threading.Lock()

    def attach(self, side: str, sock: socket.socket) -> bool:
        """Take ``sock`` as ``side``; False (refused) if that side is already connected."""
        with self._lock:
            if self.socks[side] is not None:
                self.refused[side] += 1
                return False
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socks[side] = sock
            self.accepts[side] += 1
            if all(self.socks.values()):
                self.sessions += 1
        thread = threading.Thread(
            target=self._relay,
            args=(side, sock),
            daemon=True,
            name=f"{self.config.a}--{self.config.z}:{side}",
        )
        thread.start()
        return True

    def _detach(self, side: str, sock: socket.socket) -> None:
        with self._lock:
            if self.socks[side] is sock:
                self.socks[side] = None
        with contextlib.suppress(OSError):
            sock.close()

    def close(self) -> None:
        for side in SIDES:
            sock = self.socks[side]
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self.pcap is not None:
            self.pcap.close()

    def _relay(self, side: str, sock: socket.socket) -> None:
        other = "z" if side == "a" else "a"
        counters = self.read[side]
        # An anonymous mapping: pages cost memory only once traffic touches them.
        buf = mmap.mmap(-1, BUFFER_SIZE)
        view = memoryview(buf)
        have = 0
        unpack = _HEADER.unpack_from
        try:
            while True:
                n = sock.recv_into(view[have:])
                if n == 0:
                    return
                have += n
                pos = frames = 0
                while have - pos >= 4:
                    (length,) = unpack(buf, pos)
                    if length > MAX_FRAME:
                        raise CorruptStream(length)
                    end = pos + 4 + length
                    if end > have:
                        break
                    pos = end
                    frames += 1
                if not pos:
                    continue
                self.last_activity = time.time()
                peer = self.socks[other]
                if peer is not None:
                    try:
                        peer.sendall(view[:pos])
                        counters.bytes += pos
                        counters.frames += frames
                    except OSError:  # the peer just left; its own thread detaches it
                        counters.dropped_bytes += pos
                        counters.dropped_frames += frames
                else:
                    counters.dropped_bytes += pos
                    counters.dropped_frames += frames
                if self.pcap is not None:
                    self.pcap.write_frames(view[:pos])
                rest = have - pos
                if rest:
                    buf[:rest] = view[pos:have]
                have = rest
        except (OSError, CorruptStream):
            return
        finally:
            view.release()
            buf.close()
            self._detach(side, sock)

    def stats(self) -> dict[str, Any]:
        c = self.config
        a, z = self.read["a"], self.read["z"]
        return {
            "a": c.a,
            "z": c.z,
            "a_port": c.a_side.port,
            "z_port": c.z_side.port,
            "connected": self.socks["a"] is not None and self.socks["z"] is not None,
            "a_connected": self.socks["a"] is not None,
            "z_connected": self.socks["z"] is not None,
            "a_accepts": self.accepts["a"],
            "z_accepts": self.accepts["z"],
            "a_refused": self.refused["a"],
            "z_refused": self.refused["z"],
            "sessions": self.sessions,
            "a_to_z_bytes": a.bytes,
            "z_to_a_bytes": z.bytes,
            "a_to_z_frames": a.frames,
            "z_to_a_frames": z.frames,
            "a_dropped_frames": a.dropped_frames,
            "a_dropped_bytes": a.dropped_bytes,
            "z_dropped_frames": z.dropped_frames,
            "z_dropped_bytes": z.dropped_bytes,
            "last_activity": self.last_activity,
        }
