"""A real newtlink process for tests: config, start, connect sides, read stats, stop.

A bridge runs in one of two modes, so every behaviour is tested both ways:
``listen`` (each side listens and the test connects, as when newtlink runs
on its own) and ``dial`` (the test listens, as a QEMU ``socket,listen=``
NIC does, and the bridge dials it and redials whenever it drops).
``Newtlink.connect(side)`` gives a connected socket in either mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from newtlab.newtlink import query_stats

MODULE = "newtlab.newtlink"


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago (held together while picked)."""
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# listen: the bridge listens, the "VMs" dial it; dial: the "VMs" listen on TCP and the
# bridge dials them; unix: the same on Unix sockets in the bridge's directory (newtlab's way).
MODES = ("listen", "dial", "unix")
DIALLING = ("dial", "unix")


def link_config(
    i: int, a_port: int, z_port: int, mode: str = "listen", **extra: Any
) -> dict[str, Any]:
    if mode == "unix":
        sides: dict[str, Any] = {"a_dial": f"unix:a{i}.nic", "z_dial": f"unix:z{i}.nic"}
    elif mode == "dial":
        sides = {"a_dial": f"127.0.0.1:{a_port}", "z_dial": f"127.0.0.1:{z_port}"}
    else:
        sides = {"a_port": a_port, "z_port": z_port, "a_bind": "127.0.0.1", "z_bind": "127.0.0.1"}
    return {"a": f"a{i}:eth1", "z": f"z{i}:eth1", **sides, **extra}


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    path = directory / "bridge.json"
    path.write_text(json.dumps(config))
    return path


class Newtlink:
    """One started newtlink process (killed by the fixture that made it, whatever happens)."""

    def __init__(
        self, directory: Path, config: dict[str, Any], argv: list[str], mode: str = "listen"
    ) -> None:
        self.config = config
        self.mode = mode
        self.listeners: dict[tuple[int, str], socket.socket] = {}  # dial mode: the "VM" ends
        self.taken: dict[tuple[int, str], int] = {}  # connections handed out per (link, side)
        self.relay = 0  # dial mode: pid of the bridge process those were handed to
        self.directory = directory
        self.unix = config.get("stats_unix", "")
        self.log = directory / "newtlink.log"
        with self.log.open("ab") as log:  # a file, so log lines can never block the bridge
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, cwd=directory)

    def ready_line(self, timeout: float = 15) -> str:
        """The first stdout line ("" if it exits or says nothing in time)."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().decode() if ready else ""

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def port(self, side: str, link: int = 0) -> int:
        entry = self.config["links"][link]
        return int(entry.get(f"{side}_port") or entry[f"{side}_dial"].rpartition(":")[2])

    def connect(
        self, side: str, link: int = 0, source: str | None = None, timeout: float = 5
    ) -> socket.socket:
        """A socket connected to ``side``: dialled to it, or (dial mode) accepted from it.

        In dial mode the side's listener opens on first use (until then the
        bridge's dials are refused), and this returns once the bridge has
        taken the connection.
        """
        key = (link, side)
        if self.mode in DIALLING:
            sock = self._accept(key, timeout)
        else:
            address = (source, 0) if source else None
            sock = socket.create_connection(
                ("127.0.0.1", self.port(side, link)), timeout=timeout, source_address=address
            )
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.taken[key] = self.taken.get(key, 0) + 1
        return sock

    def plug(self, side: str, link: int = 0) -> None:
        """Dial mode: open the side's listener now (the bridge connects within its backoff)."""
        key = (link, side)
        if self.mode == "unix" and key not in self.listeners:
            listener = socket.socket(socket.AF_UNIX)
            path = self.directory / self.config["links"][link][f"{side}_dial"].removeprefix("unix:")
            path.unlink(missing_ok=True)
            listener.bind(str(path))
            listener.listen(1)
            self.listeners[key] = listener
        if self.mode == "dial" and key not in self.listeners:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port(side, link)))
            listener.listen(1)  # as QEMU: one pending connection at most
            self.listeners[key] = listener

    def _accept(self, key: tuple[int, str], timeout: float) -> socket.socket:
        link, side = key
        self.plug(side, link)
        listener = self.listeners[key]
        listener.settimeout(timeout)
        sock, _ = listener.accept()
        sock.settimeout(timeout)
        relay = self.doc()["pid"]  # the bridge that dialled us: it is up
        if relay != self.relay:  # a restarted bridge counts from zero
            self.relay = relay
            self.taken.clear()
        taken = self.taken.get(key, 0) + 1
        self.wait_stats(lambda s: s[f"{side}_connects"] >= taken and s[f"{side}_connected"], link)
        return sock

    def unplug(self, side: str, link: int = 0) -> None:
        """Dial mode: close the side's listener, so the bridge's redials are refused.

        Call it before the side's last connection ends, so counters stay exact.
        """
        listener = self.listeners.pop((link, side), None)
        if listener is not None:
            listener.close()

    def wait_dropped(self, side: str, link: int = 0, timeout: float = 10) -> dict[str, Any]:
        """Stats once the bridge has let go of the last connection handed out for ``side``."""
        taken = self.taken.get((link, side), 0)
        return self.wait_stats(
            lambda s: not s[f"{side}_connected"] or s[f"{side}_connects"] > taken, link, timeout
        )

    def doc(self) -> dict[str, Any]:
        """The whole stats document (pid, restarts, started, links)."""
        return query_stats(self.unix)

    def stats(self, link: int = 0) -> dict[str, Any]:
        data: dict[str, Any] = query_stats(self.unix)["links"][link]
        return data

    def wait_stats(
        self, predicate: Callable[[dict[str, Any]], bool], link: int = 0, timeout: float = 10
    ) -> dict[str, Any]:
        """Stats once ``predicate`` holds; the last stats (for the assertion) on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats(link)
            if predicate(stats) or time.monotonic() > deadline:
                return stats
            time.sleep(0.01)

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the bridge and any bridge it supervises."""
        for listener in self.listeners.values():
            listener.close()
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()


def argv_for(config_path: Path, lab: str | None = "nltest", supervise: bool = False) -> list[str]:
    argv = [sys.executable, "-m", MODULE, str(config_path)]
    if supervise:
        argv.append("--supervise")
    return [*argv, "--lab", lab] if lab else argv


def run_to_exit(config_path: Path, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    """Run newtlink expecting it to fail at start; its exit status and output."""
    return subprocess.run(
        argv_for(config_path), capture_output=True, text=True, timeout=timeout, check=False
    )


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


StartBridge = Callable[..., Newtlink]  # the ``start_bridge`` fixture
