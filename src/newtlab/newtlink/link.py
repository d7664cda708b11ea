"""One link's state: which side is connected to whom, and its counters.

Each connected side has one reader thread (see ``pump``), which owns that
side's socket; the other side's reader is its only writer. A socket is closed
by its reader only while holding its ``write_lock``, after marking it dead, so
a writer never sends on a closed (possibly reused) file descriptor.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from .config import SIDES, LinkConfig
from .impair import Impairment
from .pcap import PcapTap, PcapWriter
from .shaper import Shaper


def other(side: str) -> str:
    return "z" if side == "a" else "a"


class Conn:
    """One accepted connection on one side of a link."""

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.alive = True
        self.write_lock = threading.Lock()

    def kill(self) -> None:
        """Make every blocked call on this connection return; the reader then closes it."""
        self.alive = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.kill()
        with self.write_lock:
            self.sock.close()


class Counters:
    """Traffic read from one side. Written only by that side's reader thread."""

    __slots__ = (
        "bytes",
        "dropped_bytes",
        "dropped_frames",
        "frames",
        "last_activity",
        "torn_bytes",
        "torn_frames",
    )

    def __init__(self) -> None:
        self.bytes = self.frames = 0  # forwarded to the other side
        self.dropped_bytes = self.dropped_frames = 0  # discarded: the other side was away
        self.torn_bytes = self.torn_frames = 0  # incomplete frame left behind by a dying sender
        self.last_activity = 0.0


class Link:
    def __init__(self, config: LinkConfig) -> None:
        self.config = config
        self.name = config.name
        self.conns: dict[str, Conn | None] = {"a": None, "z": None}
        self.connects = {"a": 0, "z": 0}  # connections taken (accepted or dialled) per side
        self.dial_failures = {"a": 0, "z": 0}
        self.refused_busy = {"a": 0, "z": 0}
        self.refused_allow = {"a": 0, "z": 0}
        self.sessions = 0
        self.read = {"a": Counters(), "z": Counters()}  # keyed by the side read from
        # Frames pass through Python only while capturing; the pumps check this per read.
        self.pcap: PcapWriter | None = PcapWriter(config.pcap) if config.pcap else None
        self.taps: tuple[PcapTap, ...] = ()  # live captures (``newtlab capture``)
        self.down = False  # a pulled cable: no frame crosses either way
        self.shapers: dict[str, Shaper | None] = {"a": None, "z": None}  # by side read from
        self._lock = threading.Lock()

    # -- settings (see ``control``) -------------------------------------------------------

    def send_to(self, side: str, frame: bytes) -> bool:
        """Send ``frame`` to ``side`` if it is connected (a shaper's sender)."""
        conn = self.conns[side]
        if conn is None or self.down:
            return False
        with conn.write_lock:
            if not conn.alive:
                return False
            try:
                conn.sock.sendall(frame)
            except OSError:
                conn.kill()
                return False
        return True

    def impair(self, read_side: str, impairment: Impairment | None) -> None:
        """Impair frames read from ``read_side`` (None or an inactive one: no longer)."""
        old = self.shapers[read_side]
        if impairment is not None and impairment.active:
            target = other(read_side)
            self.shapers[read_side] = Shaper(
                impairment, lambda frame: self.send_to(target, frame),
                f"{self.name} {read_side}→{target}",
            )  # fmt: skip
        else:
            self.shapers[read_side] = None
        if old is not None:
            old.stop()

    def settings(self) -> dict[str, Any]:
        """What is set on this link, as the settings file keeps it."""
        found: dict[str, Any] = {"down": self.down} if self.down else {}
        for side in SIDES:
            shaper = self.shapers[side]
            if shaper is not None:
                found[side] = shaper.impairment.to_json()
        return found

    def apply(self, settings: dict[str, Any]) -> None:
        """Make this link's settings exactly ``settings`` (as ``settings`` returns them)."""
        self.down = bool(settings.get("down", False))
        for side in SIDES:
            raw = settings.get(side)
            wanted = Impairment.from_json(raw) if raw else None
            shaper = self.shapers[side]
            if wanted != (shaper.impairment if shaper else None):  # frames on their way stay
                self.impair(side, wanted)

    def add_tap(self, tap: PcapTap) -> None:
        with self._lock:
            self.taps = (*self.taps, tap)

    def remove_tap(self, tap: PcapTap) -> None:
        with self._lock:
            self.taps = tuple(t for t in self.taps if t is not tap)

    def attach(self, side: str, conn: Conn) -> bool:
        """Take ``conn`` as ``side``; False if that side is already connected."""
        with self._lock:
            if self.conns[side] is not None:
                self.refused_busy[side] += 1
                return False
            self.conns[side] = conn
            self.connects[side] += 1
            if self.conns[other(side)] is not None:
                self.sessions += 1
            return True

    def detach(self, side: str, conn: Conn) -> None:
        with self._lock:
            if self.conns[side] is conn:
                self.conns[side] = None
        conn.close()

    def close(self) -> None:
        """Disconnect both sides (their readers finish) and end any capture."""
        for side in SIDES:
            conn = self.conns[side]
            if conn is not None:
                conn.kill()
            shaper = self.shapers[side]
            if shaper is not None:
                shaper.stop()
        for tap in self.taps:
            tap.close()

    def finish(self) -> None:
        if self.pcap is not None:
            self.pcap.close()
            self.pcap = None

    def stats(self) -> dict[str, Any]:
        a_conn, z_conn = self.conns["a"], self.conns["z"]
        a, z = self.read["a"], self.read["z"]
        cfg = self.config
        return {
            "a": cfg.a.name,
            "z": cfg.z.name,
            "a_port": cfg.a.port,
            "z_port": cfg.z.port,
            "a_bind": "" if cfg.a.dials else cfg.a.bind,
            "z_bind": "" if cfg.z.dials else cfg.z.bind,
            "a_dial": cfg.a.dial_address,
            "z_dial": cfg.z.dial_address,
            "connected": a_conn is not None and z_conn is not None,
            "sessions": self.sessions,
            "a_connected": a_conn is not None,
            "z_connected": z_conn is not None,
            "a_peer": a_conn.peer if a_conn else "",
            "z_peer": z_conn.peer if z_conn else "",
            "a_connects": self.connects["a"],
            "z_connects": self.connects["z"],
            "a_dial_failures": self.dial_failures["a"],
            "z_dial_failures": self.dial_failures["z"],
            "a_refused_busy": self.refused_busy["a"],
            "z_refused_busy": self.refused_busy["z"],
            "a_refused_allow": self.refused_allow["a"],
            "z_refused_allow": self.refused_allow["z"],
            "a_to_z_bytes": a.bytes,
            "z_to_a_bytes": z.bytes,
            "a_to_z_frames": a.frames,
            "z_to_a_frames": z.frames,
            "a_to_z_dropped_bytes": a.dropped_bytes,
            "z_to_a_dropped_bytes": z.dropped_bytes,
            "a_to_z_dropped_frames": a.dropped_frames,
            "z_to_a_dropped_frames": z.dropped_frames,
            "a_torn_bytes": a.torn_bytes,
            "z_torn_bytes": z.torn_bytes,
            "a_torn_frames": a.torn_frames,
            "z_torn_frames": z.torn_frames,
            "a_last_activity": a.last_activity,
            "z_last_activity": z.last_activity,
            "last_activity": max(a.last_activity, z.last_activity),
            "pcap": self.config.pcap if self.pcap is not None else "",
            "down": self.down,
            "captures": len(self.taps),
            **{f"{side}_impaired": self.shapers[side] is not None for side in SIDES},
            **{f"{s}_to_{other(s)}_impaired_dropped_frames": shaper.dropped_frames
               for s, shaper in self.shapers.items() if shaper is not None},
        }  # fmt: skip
