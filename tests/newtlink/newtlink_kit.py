"""A real newtlink process for tests: config, start, connect sides, read stats, stop."""

from __future__ import annotations

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

from newtlab.runtime.newtlink import query_stats

MODULE = "newtlab.runtime.newtlink"


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


def link_config(i: int, a_port: int, z_port: int, **extra: Any) -> dict[str, Any]:
    return {
        "a": f"a{i}:eth1",
        "z": f"z{i}:eth1",
        "a_port": a_port,
        "z_port": z_port,
        "a_bind": "127.0.0.1",
        "z_bind": "127.0.0.1",
        **extra,
    }


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    path = directory / "bridge.json"
    path.write_text(json.dumps(config))
    return path


class Newtlink:
    """One started newtlink process (killed by the fixture that made it, whatever happens)."""

    def __init__(self, directory: Path, config: dict[str, Any], argv: list[str]) -> None:
        self.config = config
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

    def connect(
        self, side: str, link: int = 0, source: str | None = None, timeout: float = 5
    ) -> socket.socket:
        port = self.config["links"][link][f"{side}_port"]
        address = (source, 0) if source else None
        sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=address
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

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
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()


def argv_for(config_path: Path, lab: str | None = "nltest") -> list[str]:
    argv = [sys.executable, "-m", MODULE, str(config_path)]
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
