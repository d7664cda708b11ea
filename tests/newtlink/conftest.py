"""A real newtlink process per test, on free ports, always stopped afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bridgekit import Bridge, free_ports, launch


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Callable[..., Bridge]]:
    started: list[subprocess.Popen[str]] = []

    def start(links: int = 1, **extra: Any) -> Bridge:
        ports = free_ports(2 * links)
        unix = str(tmp_path / "stats.sock")
        config = {
            "lab": "nltest",
            "links": [
                {
                    "a": f"a{i}:eth1",
                    "z": f"z{i}:eth1",
                    "a_port": ports[2 * i],
                    "z_port": ports[2 * i + 1],
                    "a_bind": "127.0.0.1",
                    "z_bind": "127.0.0.1",
                }
                for i in range(links)
            ],
            "stats_unix": unix,
            **extra,
        }
        proc = launch(tmp_path, config)
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == f"READY {proc.pid}\n", proc.stderr.read() if proc.stderr else line
        return Bridge(proc, config, unix)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def pid_gone() -> Callable[[int], bool]:
    def check(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    return check
