"""A real newtlink process driven by tests: start it, connect sides, read stats."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_ports(count: int) -> list[int]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class Bridge:
    proc: subprocess.Popen[str]
    config: dict[str, Any]
    unix: str
    stdout: str = ""
    links: list[dict[str, Any]] = field(default_factory=list)

    def connect(self, link: int, side: str, timeout: float = 5) -> socket.socket:
        port = self.config["links"][link][f"{side}_port"]
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def stats(self, link: int = 0) -> dict[str, Any]:
        from newtlab.runtime.newtlink import query_stats

        stats: dict[str, Any] = query_stats(self.unix)["links"][link]
        return stats

    def wait_stats(
        self, predicate: Callable[[dict[str, Any]], bool], link: int = 0, timeout: float = 10
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats(link)
            if predicate(stats) or time.monotonic() > deadline:
                return stats
            time.sleep(0.02)


def launch(tmp_path: Path, config: dict[str, Any]) -> subprocess.Popen[str]:
    path = tmp_path / "bridge.json"
    path.write_text(json.dumps(config))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newtlab.runtime.newtlink",
            str(path),
            "--lab",
            config.get("lab", "t"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
