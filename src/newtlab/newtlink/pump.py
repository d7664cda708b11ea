"""The data path: one thread per connected side, forwarding whole frames to the other side.

Framing rule: the other side only ever receives whole frames. A frame is
forwarded once all of it has arrived, so a sender that dies mid-frame leaves
its incomplete frame behind (counted as torn) and the survivor's parser stays
in step; a side that comes back starts a new stream and is sent frames from a
frame boundary on. While the other side is away, frames are read and dropped
(a pulled cable) and the sender stays connected.

How: ``recv_into`` a 4 MiB buffer, find the end of the last whole frame
(``frames.walk``, no Python step per frame in runs of equal-length frames),
``sendall`` exactly the whole frames from the same buffer, and move the
incomplete tail (at most one frame) to the front for the next read. Measured
here against ``os.splice`` (see docs/newtlink.md): a frame-aware splice must
peek every header first, and that peek plus the splice syscalls cost more than
this one extra copy; a big buffer means few syscalls per byte.
"""

from __future__ import annotations

import mmap
import sys
import threading
import time
import traceback
from collections.abc import Callable

from .frames import HEADER_SIZE, MAX_FRAME, CorruptStream, walk
from .link import Conn, Counters, Link, other

WINDOW = 4 << 20  # bytes asked for per read; measured faster than 1 MiB or 256 KiB
BURST = 1 << 20  # a read this big means a burst, whose buffer pages are returned after it
KEEP = 64 << 10  # buffer bytes that stay resident between bursts
STACK_SIZE = 256 * 1024  # pumps call nothing deep; thousands of threads must stay cheap


class _Closed(Exception):
    """This side's connection ended."""


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"newtlink: {stamp} {message}", file=sys.stderr, flush=True)


class Pump:
    """Reads one side of a link until it disconnects."""

    def __init__(
        self, link: Link, side: str, conn: Conn, on_exit: Callable[[], None] | None = None
    ) -> None:
        self.on_exit = on_exit  # called once the connection is gone (a dialling side redials)
        self.link = link
        self.side = side
        self.other = other(side)
        self.conn = conn
        self.counters: Counters = link.read[side]
        # Room for a held incomplete frame plus a full window. An anonymous
        # mapping costs memory only for the pages that traffic touches.
        self.buf = mmap.mmap(-1, WINDOW + HEADER_SIZE + MAX_FRAME)
        self.view = memoryview(self.buf)
        self.held = 0  # bytes of an incomplete frame at the front of buf

    def start(self) -> threading.Thread:
        name = f"{self.link.name}:{self.side}"
        thread = threading.Thread(target=self.run, name=name, daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        reason = "closed"
        try:
            self._pump()
        except _Closed:
            pass
        except CorruptStream as exc:
            reason = f"corrupt stream ({exc}), disconnected"
        except OSError as exc:
            reason = exc.strerror or str(exc)
        except Exception:  # a bug must not take the other links down
            reason = "internal error:\n" + traceback.format_exc()
        finally:
            if self.held:  # the sender left mid-frame: that frame is never forwarded
                self.counters.torn_bytes += self.held
                self.counters.torn_frames += 1
            self.link.detach(self.side, self.conn)
            self.view.release()
            self.buf.close()
            config = self.link.config.side(self.side)
            log(f"{config.name} ({self.side} side of {self.link.name}) {self.conn.peer}: {reason}")
            if self.on_exit is not None:
                self.on_exit()

    def _pump(self) -> None:
        buf, view = self.buf, self.view
        recv_into = self.conn.sock.recv_into
        in_burst = False
        have = 0
        while True:
            n = recv_into(view[have:]) if have else recv_into(view)
            if not n:
                raise _Closed
            end = have + n
            whole, frames = walk(buf, end)
            if whole:
                self._send(whole, frames)
            have = self.held = end - whole
            if have and whole:
                buf.move(0, whole, have)
            if n >= BURST:
                in_burst = True
            elif in_burst:  # back to a trickle: give the burst's pages back
                in_burst = False
                keep = -(-max(KEEP, have) // mmap.PAGESIZE) * mmap.PAGESIZE
                buf.madvise(mmap.MADV_DONTNEED, keep, len(buf) - keep)

    def _send(self, size: int, frames: int) -> None:
        """Forward ``buf[:size]`` (whole frames), or drop it if the other side is away."""
        counters = self.counters
        counters.last_activity = time.time()
        link = self.link
        if link.pcap is not None:
            link.pcap.write(self.view[:size])
        for tap in link.taps:  # a live capture: usually none
            tap.write(self.view[:size])
        if link.down:  # a pulled cable
            counters.dropped_bytes += size
            counters.dropped_frames += frames
            return
        shaper = link.shapers[self.side]
        if shaper is not None:  # impaired: the shaper sends each frame when it is due
            shaper.submit(self.view[:size])
            counters.bytes += size
            counters.frames += frames
            return
        peer = link.conns[self.other]
        if peer is not None:
            # The lock keeps the peer's reader from closing the socket under us.
            with peer.write_lock:
                if peer.alive:
                    try:
                        peer.sock.sendall(self.view[:size])
                    except OSError:
                        peer.kill()  # it is gone; its own reader closes it
                    else:
                        counters.bytes += size
                        counters.frames += frames
                        return
        counters.dropped_bytes += size
        counters.dropped_frames += frames
