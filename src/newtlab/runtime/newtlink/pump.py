"""The data path: one thread per connected side, forwarding whole frames to the other side.

Framing rule: the other side only ever receives whole frames. A frame is
forwarded once all of it has arrived, so a sender that dies mid-frame leaves
its incomplete frame behind (counted as torn) and the survivor's parser stays
in step; a side that comes back starts a new stream, and is sent frames from
a frame boundary on. While the other side is away, frames are read and
dropped (a pulled cable) and the sender stays connected.

Two ways to move the bytes, chosen per read:

* buffered: ``recv_into`` a 1 MiB buffer, find the last whole frame
  (``frames.walk``), ``sendall`` exactly the whole frames, keep the tail for
  the next read. Two syscalls per read; best while reads are small (ping-pong,
  a VM sending frame by frame), and the only way while capturing to pcap.
* spliced: once a read comes back big (the sender is ahead of us), ``MSG_PEEK``
  the next window, walk it, then ``os.splice`` exactly its whole frames
  socket → pipe → socket. The payload is copied once (the peek) instead of
  twice, and the peeked copy lets a chunk cut short by the sender dying be
  completed for the receiver from memory, so no torn frame ever leaves.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import socket
import sys
import threading
import time
import traceback
from typing import Any

from .frames import HEADER, HEADER_SIZE, MAX_FRAME, CorruptStream, walk
from .link import Conn, Counters, Link, other

WINDOW = 1 << 20  # bytes asked for per read or peek
BULK = 256 * 1024  # a read at least this big switches to splicing
SPLICE_MIN_FRAME = 512  # splicing tiny frames costs a pipe slot each: copy those instead
PIPE_SIZE = 1 << 20  # measured faster than the default 64 KiB
STACK_SIZE = 256 * 1024  # pumps call nothing deep; 2,000 threads must stay cheap

_splice: Any = getattr(os, "splice", None)  # Python >= 3.10 on Linux
_PEEK = socket.MSG_PEEK
_WAITALL = socket.MSG_WAITALL


class _Closed(Exception):
    """This side's connection ended."""


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"newtlink: {stamp} {message}", file=sys.stderr, flush=True)


class _Pipe:
    """A kernel pipe that splice moves pages through; drained into /dev/null on trouble."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        with contextlib.suppress(OSError):  # unprivileged users may be limited
            fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self.null = os.open(os.devnull, os.O_WRONLY)

    def drain(self, count: int) -> None:
        while count:
            count -= _splice(self.r, self.null, count)

    def close(self) -> None:
        for fd in (self.r, self.w, self.null):
            os.close(fd)


class Pump:
    """Reads one side of a link until it disconnects."""

    def __init__(self, link: Link, side: str, conn: Conn) -> None:
        self.link = link
        self.side = side
        self.other = other(side)
        self.conn = conn
        self.counters: Counters = link.read[side]
        self.buf = mmap.mmap(-1, WINDOW + HEADER_SIZE + MAX_FRAME)  # pages cost RSS once used
        self.view = memoryview(self.buf)
        self.pipe: _Pipe | None = None
        self.held = 0  # bytes of an incomplete frame at the front of buf

    def start(self) -> threading.Thread:
        thread = threading.Thread(
            target=self.run, name=f"{self.link.name}:{self.side}", daemon=True
        )
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
            if self.pipe is not None:
                self.pipe.close()
            config = self.link.config.side(self.side)
            log(f"{config.name} ({self.side} side of {self.link.name}) {self.conn.peer}: {reason}")

    # -- the loop -------------------------------------------------------------------------

    def _pump(self) -> None:
        buf, view, link = self.buf, self.view, self.link
        recv_into = self.conn.sock.recv_into
        bulk = False
        while True:
            have = self.held  # bytes of an incomplete frame at the front of buf
            if bulk and not have and _splice is not None and link.pcap is None:
                n = recv_into(view, WINDOW, _PEEK)
                if not n:
                    raise _Closed
                whole, frames = walk(buf, n)
                bulk = n >= BULK and whole >= SPLICE_MIN_FRAME * frames
                if whole:
                    self._splice(whole, frames)
                    continue
                # The first frame is not all here yet: read it like any other.
            n = recv_into(view[have : have + WINDOW])
            if not n:
                raise _Closed
            end = have + n
            whole, frames = walk(buf, end)
            if whole:
                self._send(whole, frames)
            self.held = end - whole
            if self.held and whole:
                buf.move(0, whole, self.held)
            bulk = n >= BULK and whole >= SPLICE_MIN_FRAME * frames
            if bulk and self.held:
                self._complete()  # so the next read starts at a frame boundary

    def _complete(self) -> None:
        """Read the rest of the frame held in the buffer, exactly, and forward it."""
        self._read_until(HEADER_SIZE)
        (length,) = HEADER.unpack_from(self.buf, 0)
        if length > MAX_FRAME:
            raise CorruptStream(length)
        self._read_until(HEADER_SIZE + length)
        self._send(HEADER_SIZE + length, 1)
        self.held = 0

    def _read_until(self, need: int) -> None:
        while self.held < need:
            n = self.conn.sock.recv_into(self.view[self.held : need], need - self.held, _WAITALL)
            if not n:
                raise _Closed
            self.held += n

    # -- forwarding -----------------------------------------------------------------------

    def _peer(self) -> Conn | None:
        peer = self.link.conns[self.other]
        return peer if peer is not None and peer.alive else None

    def _send(self, size: int, frames: int) -> None:
        """Forward ``buf[:size]`` (whole frames) or drop it if the other side is away."""
        counters = self.counters
        counters.last_activity = time.time()
        pcap = self.link.pcap
        if pcap is not None:
            pcap.write(self.view[:size])
        peer = self._peer()
        if peer is not None:
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

    def _splice(self, whole: int, frames: int) -> None:
        """Move the ``whole`` bytes just peeked (whole frames) to the other side, zero-copy."""
        counters = self.counters
        counters.last_activity = time.time()
        if self.pipe is None:
            self.pipe = _Pipe()
        peer = self._peer()
        if peer is None:  # nobody to send to: consume and drop, still zero-copy
            delivered = self._splice_in(whole, None)
        else:
            with peer.write_lock:
                delivered = self._splice_in(whole, peer if peer.alive else None)
        if delivered:
            counters.bytes += whole
            counters.spliced_bytes += whole
            counters.frames += frames
        else:
            counters.dropped_bytes += whole
            counters.dropped_frames += frames

    def _splice_in(self, whole: int, peer: Conn | None) -> bool:
        """Consume exactly ``whole`` bytes from this side, passing them to ``peer`` if alive.

        Called with the peer's write lock held. True if ``peer`` got all of them.
        """
        assert self.pipe is not None
        pipe, src = self.pipe, self.conn.fd
        dst = peer.fd if peer is not None else pipe.null
        left = whole
        while left:
            try:
                moved = _splice(src, pipe.w, left)
            except OSError:
                moved = 0
            if not moved:
                # This side died inside a chunk that was already peeked: the
                # peer may hold part of a frame, so finish the chunk from the copy.
                if peer is not None and peer.alive:
                    with contextlib.suppress(OSError):
                        peer.sock.sendall(self.view[whole - left : whole])
                raise _Closed
            left -= moved
            try:
                while moved:
                    moved -= _splice(pipe.r, dst, moved)
            except OSError:
                if peer is None:  # /dev/null failed: nothing sensible is left to do
                    raise
                peer.kill()
                pipe.drain(moved)
                peer, dst = None, pipe.null
        return peer is not None
