"""Helpers for tests that deploy real labs through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import labprocs
from newtlab.agent import procs

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "line3"
T = TypeVar("T")


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newtlab", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=timeout,
    )


def ssh(node: str, command: str) -> str:
    """``newtlab ssh NODE -- COMMAND``, which must succeed; its output."""
    result = run_cli("ssh", node, "--", command, timeout=60)
    assert result.returncode == 0, f"ssh {node} {command!r}: {result.stderr}"
    return result.stdout


def ping(node: str, address: str) -> None:
    # The first replies may be lost while e1000/virtio links settle: allow a few tries.
    ssh(node, f"ping -c 3 -W 2 {address} || ping -c 3 -W 2 {address}")


def status() -> dict[str, Any]:
    """``newtlab status --json`` of the only deployed lab."""
    result = run_cli("status", "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def wait_for(predicate: Callable[[], T], timeout: float = 60) -> T:
    """The first truthy value of ``predicate()``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def kill_leftovers(lab: str) -> list[int]:
    """Kill anything still tagged with ``lab``; the PIDs that were left."""
    left = list(labprocs.vms(lab)) + procs.find(procs.bridge_tag(lab))
    for pid in left:
        procs.terminate(
            pid, procs.Tag("qemu", lab) if pid in labprocs.vms(lab) else procs.bridge_tag(lab), 1
        )
    return left


@dataclass
class SpecDir:
    path: Path
    lab: str
    ports: dict[str, int]

    def profiles(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((self.path / "profiles").iterdir())}
