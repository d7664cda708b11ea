"""The bridge process: open every listener up front, dial and accept sides, serve stats.

The main thread runs one selector loop: it accepts (listening sides and
stats) and dials (``dial``); each connected side gets a pump thread
(``pump``) that moves its frames. SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import control, stats
from .config import SIDES, BridgeConfig, normalize_address
from .dial import Dialer
from .link import Conn, Link
from .pump import STACK_SIZE, Pump, log

EXIT_OK = 0
EXIT_FAILED = 2  # bad config, or a listener could not be opened: nothing is running
LISTEN_BACKLOG = 8

if TYPE_CHECKING:
    Address = str | tuple[str, int]  # a Unix socket path, or (host, port)


class StartError(Exception):
    """The bridge cannot start; the message is the one line to print."""


def _where(address: Address) -> str:
    if isinstance(address, str):
        return address
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen(address: Address, purpose: str) -> socket.socket:
    if isinstance(address, str):
        family = socket.AF_UNIX
    else:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family != socket.AF_UNIX:
            # A restarted bridge must get its ports back while old connections linger.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StartError(f"cannot listen on {_where(address)} ({purpose}): {reason}") from None
    return sock


def _clear_stale_unix_socket(path: str, purpose: str) -> None:
    """Remove a socket file left by a bridge that died; never a live one or another file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StartError(f"cannot listen on {path} ({purpose}): {exc.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise StartError(f"cannot listen on {path} ({purpose}): exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # nobody answers: stale
            return
    raise StartError(f"cannot listen on {path} ({purpose}): a running process serves it")


class Bridge:
    def __init__(self, config: BridgeConfig, lab: str, restarts: int = 0) -> None:
        self.config = config
        self.lab = lab
        self.restarts = restarts  # how often a supervisor has restarted this bridge
        self.started = time.time()
        self.links: list[Link] = []
        # Every registered file object carries the function that handles it.
        self.selector = selectors.DefaultSelector()
        self.listeners: list[socket.socket] = []
        self.dialer = Dialer(self.selector, self._connected)
        self.pumps: list[threading.Thread] = []
        self.unix_paths: list[str] = []
        self.stopping = False

    # -- start ----------------------------------------------------------------------------

    def open(self) -> None:
        """Open every listener and capture file, or none: StartError says what failed."""
        try:
            for link_config in self.config.links:
                try:
                    link = Link(link_config)
                except OSError as exc:
                    raise StartError(
                        f"cannot write capture file {link_config.pcap} "
                        f"(link {link_config.a.name} -- {link_config.z.name}): {exc.strerror}"
                    ) from None
                self.links.append(link)
                for side in SIDES:
                    cfg = link_config.side(side)
                    if cfg.dials:
                        continue
                    purpose = f"link {link_config.a.name} -- {link_config.z.name}, {side} side"
                    sock = _listen((cfg.bind, cfg.port), purpose)
                    self._register(sock, functools.partial(self._accept_link, sock, link, side))
            if self.config.stats_addr is not None:
                sock = _listen(self.config.stats_addr, "stats")
                self._register(sock, functools.partial(self._accept_stats, sock))
            if self.config.stats_unix:
                _clear_stale_unix_socket(self.config.stats_unix, "stats")
                sock = _listen(self.config.stats_unix, "stats")
                self._register(sock, functools.partial(self._accept_stats, sock))
                self.unix_paths.append(self.config.stats_unix)
            if self.config.control_unix:
                _clear_stale_unix_socket(self.config.control_unix, "control")
                sock = _listen(self.config.control_unix, "control")
                self._register(sock, functools.partial(self._accept_control, sock))
                self.unix_paths.append(self.config.control_unix)
            try:
                control.load_settings(self.config.settings_file, self.links)
            except (OSError, ValueError, TypeError) as exc:
                where = self.config.settings_file or "the config"
                raise StartError(f"bad link settings in {where}: {exc}") from None
        except StartError:
            self.close()
            raise

    def _register(self, sock: socket.socket, handler: Callable[[], None]) -> None:
        self.listeners.append(sock)
        self.selector.register(sock, selectors.EVENT_READ, handler)

    # -- run ------------------------------------------------------------------------------

    def serve(self, wakeup: socket.socket) -> None:
        """Dial and accept until ``wakeup`` becomes readable (a stop signal arrived)."""
        self.selector.register(wakeup, selectors.EVENT_READ, self._stop)
        for link in self.links:
            for side in SIDES:
                if link.config.side(side).dials:
                    self.dialer.start(link, side)
        while not self.stopping:
            for key, _ in self.selector.select(self.dialer.timeout()):
                key.data()
                if self.stopping:
                    return
            self.dialer.run_due()

    def _stop(self) -> None:
        self.stopping = True

    def _accept(self, sock: socket.socket) -> tuple[socket.socket, Any] | None:
        try:
            return sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return None
        except OSError as exc:  # e.g. out of file descriptors: say so, keep serving
            log(f"accept on {_where(sock.getsockname())}: {exc.strerror or exc}")
            time.sleep(0.1)
            return None

    def _accept_stats(self, listener: socket.socket) -> None:
        accepted = self._accept(listener)
        if accepted is not None:
            self._serve_stats(accepted[0])

    def _accept_control(self, listener: socket.socket) -> None:
        accepted = self._accept(listener)
        if accepted is not None:  # a capture may last: each connection has its thread
            threading.Thread(
                target=control.serve,
                args=(accepted[0], self.links, self.config.settings_file),
                name="control",
                daemon=True,
            ).start()

    def _accept_link(self, listener: socket.socket, link: Link, side: str) -> None:
        accepted = self._accept(listener)
        if accepted is None:
            return
        sock, address = accepted
        cfg = link.config.side(side)
        try:
            host = normalize_address(address[0])
        except ValueError:
            host = str(address[0])
        peer = f"{host}:{address[1]}"
        if cfg.allow and host not in cfg.allow:
            link.refused_allow[side] += 1
            sock.close()
            log(f"{cfg.name} ({side} side of {link.name}): refused {peer}, not in the allow list")
            return
        self._attach(link, side, sock, peer, on_exit=None)

    def _connected(self, link: Link, side: str, sock: socket.socket, peer: str) -> None:
        """A dialling side got through; when its connection ends, dial again."""
        self._attach(link, side, sock, peer, on_exit=lambda: self.dialer.redial(link, side))

    def _attach(
        self,
        link: Link,
        side: str,
        sock: socket.socket,
        peer: str,
        on_exit: Callable[[], None] | None,
    ) -> None:
        where = f"{link.config.side(side).name} ({side} side of {link.name})"
        sock.setblocking(True)
        with contextlib.suppress(OSError):  # forward each frame at once, as a wire would
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Conn(sock, peer)
        if not link.attach(side, conn):
            sock.close()  # the side is taken: a second peer never hijacks the link
            log(f"{where}: refused {peer}, side already connected")
            return
        log(f"{where}: connected {peer}")
        self.pumps = [t for t in self.pumps if t.is_alive()]
        self.pumps.append(Pump(link, side, conn, on_exit).start())

    def _serve_stats(self, conn: socket.socket) -> None:
        def reply() -> None:
            with conn:
                conn.setblocking(True)
                conn.settimeout(5)
                links = [link.stats() for link in self.links]
                doc = stats.document(self.lab, self.started, links, self.restarts)
                with contextlib.suppress(OSError):
                    conn.sendall(doc)

        # A slow reader must not hold up accepting.
        threading.Thread(target=reply, name="stats", daemon=True).start()

    # -- stop -----------------------------------------------------------------------------

    def close(self, timeout: float = 2.0) -> None:
        """Stop dialling, close listeners, disconnect every side and wait (a little) for pumps."""
        self.dialer.close()
        for sock in self.listeners:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(sock)
            sock.close()
        self.listeners = []
        for path in self.unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.unix_paths = []
        for link in self.links:
            link.close()
        deadline = time.monotonic() + timeout
        for thread in self.pumps:
            thread.join(max(0.0, deadline - time.monotonic()))
        for link in self.links:
            link.finish()


def run(config: BridgeConfig, lab: str, restarts: int = 0) -> int:
    """Run the bridge until SIGTERM/SIGINT; the exit status."""
    threading.stack_size(STACK_SIZE)
    bridge = Bridge(config, lab, restarts)
    try:
        bridge.open()
    except StartError as exc:
        print(f"newtlink: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)  # the wakeup fd does the work
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # outlive the SSH session that started us
    try:
        with contextlib.suppress(OSError):
            print(f"READY {os.getpid()}", flush=True)
        log(f"ready: lab {lab or '-'}, {len(bridge.links)} links")
        bridge.serve(wake_r)
        log("stopping")
    finally:
        bridge.close()
        signal.set_wakeup_fd(-1)
        wake_r.close()
        wake_w.close()
    return EXIT_OK
