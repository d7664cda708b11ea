"""The bridge process: open every listener up front, accept, serve stats, stop on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from typing import Any

from .config import BridgeConfig
from .relay import SIDES, Link


class ListenError(Exception):
    pass


def _listen(family: int, address: Any, purpose: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(16)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        where = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
        raise ListenError(f"cannot listen on {where} ({purpose}): {exc.strerror or exc}") from None
    return sock


class Bridge:
    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.links = [Link(c) for c in config.links]
        self.started = time.time()
        self.selector = selectors.DefaultSelector()
        self.sockets: list[socket.socket] = []

    def open(self) -> None:
        """Open every listener, or none: on failure all are closed and ListenError raised."""
        try:
            for link in self.links:
                for side in SIDES:
                    cfg = link.config.a_side if side == "a" else link.config.z_side
                    purpose = f"link {link.config.a} -- {link.config.z}, {side} side"
                    sock = _listen(socket.AF_INET, (cfg.bind, cfg.port), purpose)
                    self._register(sock, ("link", link, side))
            if self.config.stats_addr:
                host, _, port = self.config.stats_addr.rpartition(":")
                sock = _listen(socket.AF_INET, (host or "127.0.0.1", int(port)), "stats")
                self._register(sock, ("stats",))
            if self.config.stats_unix:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.config.stats_unix)
                sock = _listen(socket.AF_UNIX, self.config.stats_unix, "stats")
                self._register(sock, ("stats",))
        except ListenError:
            self.close()
            raise

    def _register(self, sock: socket.socket, data: tuple[Any, ...]) -> None:
        self.sockets.append(sock)
        self.selector.register(sock, selectors.EVENT_READ, data)

    def stats(self) -> dict[str, Any]:
        return {
            "lab": self.config.lab,
            "pid": os.getpid(),
            "started": self.started,
            "links": [link.stats() for link in self.links],
        }

    def _accept(self, sock: socket.socket, data: tuple[Any, ...]) -> None:
        try:
            conn, peer = sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        if data[0] == "stats":
            with contextlib.suppress(OSError):
                conn.setblocking(True)
                conn.settimeout(2)
                conn.sendall(json.dumps(self.stats()).encode())
            conn.close()
            return
        _, link, side = data
        cfg = link.config.a_side if side == "a" else link.config.z_side
        if cfg.allow and peer[0] not in cfg.allow:
            link.refused[side] += 1
            conn.close()
        elif not link.attach(side, conn):
            conn.close()  # that side is in use: a second peer never hijacks the link

    def serve(self, wakeup: socket.socket) -> None:
        """Run until ``wakeup`` becomes readable (a signal arrived)."""
        self.selector.register(wakeup, selectors.EVENT_READ, ("wakeup",))
        while True:
            for key, _ in self.selector.select():
                if key.data[0] == "wakeup":
                    return
                self._accept(key.fileobj, key.data)  # type: ignore[arg-type]

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(sock)
            sock.close()
        for link in self.links:
            link.close()
        if self.config.stats_unix:
            with contextlib.suppress(OSError):
                os.unlink(self.config.stats_unix)


def run(config: BridgeConfig) -> int:
    bridge = Bridge(config)
    try:
        bridge.open()
    except ListenError as exc:
        print(f"newtlink: {exc}", file=sys.stderr, flush=True)
        return 2
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    print(f"READY {os.getpid()}", flush=True)
    try:
        bridge.serve(wake_r)
    finally:
        bridge.close()
    return 0
