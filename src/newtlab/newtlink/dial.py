"""Dialling sides: connect each one to its address, and again whenever it drops.

newtlab's VMs listen (QEMU's ``-netdev stream,server=on``, on a Unix socket,
accepts a new connection after every drop) and the bridge dials them, so a VM restart and a
bridge restart both heal from this side, with no action on any VM. Connects
are non-blocking and run in the bridge's selector loop; a side that cannot be
reached is retried with backoff (50 ms, doubling to 1 s), so a VM that comes
back is linked again within about a second of its QEMU listening.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import heapq
import itertools
import os
import selectors
import socket
import time
from collections.abc import Callable
from typing import Any

from .link import Link
from .pump import log

MIN_DELAY = 0.05
MAX_DELAY = 1.0
CONNECT_TIMEOUT = 5.0

Connected = Callable[[Link, str, socket.socket, str], None]


class _Attempt:
    """One connect in progress (registered for writability in the selector)."""

    def __init__(self, link: Link, side: str, sock: socket.socket, target: str) -> None:
        self.link, self.side, self.sock, self.target = link, side, sock, target
        self.deadline = time.monotonic() + CONNECT_TIMEOUT


class Dialer:
    """Keeps every dialling side connected; ``connected`` is called with each new socket."""

    def __init__(self, selector: selectors.BaseSelector, connected: Connected) -> None:
        self.selector = selector
        self.connected = connected
        self._due: list[tuple[float, int, Link, str]] = []  # heap of (when, seq, link, side)
        self._seq = itertools.count()
        self._attempts: list[_Attempt] = []
        self._delay: dict[tuple[int, str], float] = {}  # next backoff per (link, side)
        self._failing: dict[tuple[int, str], str] = {}  # last logged failure per side
        self._requests: collections.deque[tuple[Link, str]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        selector.register(self._wake_r, selectors.EVENT_READ, self._take_requests)
        self.closed = False

    # -- scheduling ---------------------------------------------------------------------

    def start(self, link: Link, side: str) -> None:
        """Dial ``side`` of ``link`` now (main thread)."""
        heapq.heappush(self._due, (time.monotonic(), next(self._seq), link, side))

    def redial(self, link: Link, side: str) -> None:
        """Dial again soon: the side's connection just ended. Safe from any thread."""
        if self.closed:
            return
        self._requests.append((link, side))
        with contextlib.suppress(OSError):  # a full wake pipe already wakes the loop
            self._wake_w.send(b"\0")

    def _take_requests(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        while self._requests:
            link, side = self._requests.popleft()
            self._delay[(id(link), side)] = MIN_DELAY
            when = time.monotonic() + MIN_DELAY
            heapq.heappush(self._due, (when, next(self._seq), link, side))

    def timeout(self) -> float | None:
        """Seconds until the next retry or connect deadline; None if nothing waits."""
        times = [a.deadline for a in self._attempts]
        if self._due:
            times.append(self._due[0][0])
        return max(0.0, min(times) - time.monotonic()) if times else None

    # -- connecting ---------------------------------------------------------------------

    def run_due(self) -> None:
        """Start the connects that are due and fail those that took too long."""
        now = time.monotonic()
        for attempt in [a for a in self._attempts if a.deadline <= now]:
            self._end(attempt)
            self._failed(attempt.link, attempt.side, "connect timed out")
        while self._due and self._due[0][0] <= now and not self.closed:
            _, _, link, side = heapq.heappop(self._due)
            self._connect(link, side)

    def _connect(self, link: Link, side: str) -> None:
        cfg = link.config.side(side)
        target = cfg.dial_address
        address: str | tuple[Any, ...]
        try:
            if cfg.unix:
                sock, address = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), cfg.unix
            else:
                family, kind, proto, _, address = socket.getaddrinfo(
                    cfg.dial, cfg.port, type=socket.SOCK_STREAM
                )[0]
                sock = socket.socket(family, kind, proto)
        except OSError as exc:
            self._failed(link, side, exc.strerror or str(exc))
            return
        sock.setblocking(False)
        if cfg.source:  # a multi-homed server dials its peers from the address they allow
            try:
                sock.bind((cfg.source, 0))
            except OSError as exc:
                sock.close()
                self._failed(link, side, f"cannot dial from {cfg.source}: {exc.strerror}")
                return
        code = sock.connect_ex(address)
        attempt = _Attempt(link, side, sock, target)
        if code == 0:
            self._succeeded(attempt)
        elif code in (errno.EINPROGRESS, errno.EAGAIN):
            self._attempts.append(attempt)
            self.selector.register(sock, selectors.EVENT_WRITE, lambda: self._finish(attempt))
        else:
            sock.close()
            self._failed(link, side, os.strerror(code))

    def _finish(self, attempt: _Attempt) -> None:
        code = attempt.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._end(attempt, close=bool(code))
        if code:
            self._failed(attempt.link, attempt.side, os.strerror(code))
        else:
            self._succeeded(attempt)

    def _end(self, attempt: _Attempt, close: bool = True) -> None:
        self._attempts.remove(attempt)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(attempt.sock)
        if close:
            attempt.sock.close()

    def _succeeded(self, attempt: _Attempt) -> None:
        key = (id(attempt.link), attempt.side)
        self._delay[key] = MIN_DELAY
        self._failing.pop(key, None)
        attempt.sock.setblocking(True)
        self.connected(attempt.link, attempt.side, attempt.sock, attempt.target)

    def _failed(self, link: Link, side: str, reason: str) -> None:
        key = (id(link), side)
        link.dial_failures[side] += 1
        delay = self._delay.get(key, MIN_DELAY)
        self._delay[key] = min(delay * 2, MAX_DELAY)
        if self._failing.get(key) != reason:  # log a new reason once, not every retry
            self._failing[key] = reason
            cfg = link.config.side(side)
            log(f"{cfg.name} ({side} side of {link.name}): {cfg.where}: {reason}; retrying")
        heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), link, side))

    def close(self) -> None:
        """Stop dialling: close connects in progress; later redials are ignored."""
        self.closed = True
        for attempt in list(self._attempts):
            self._end(attempt)
        self._due.clear()
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self._wake_r)
        self._wake_r.close()
        self._wake_w.close()
