"""Helpers for tests that deploy real labs through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from newtlab.runtime import bridge, procs

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "line3"


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newtlab", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=timeout,
    )


def kill_leftovers(lab: str) -> list[int]:
    """Kill anything still tagged with ``lab``; the PIDs that were left."""
    left = list(procs.lab_vms(lab)) + procs.find(bridge.tag(lab))
    for pid in left:
        procs.terminate(
            pid, procs.Tag("qemu", lab) if pid in procs.lab_vms(lab) else bridge.tag(lab), 1
        )
    return left


@dataclass
class SpecDir:
    path: Path
    lab: str
    ports: dict[str, int]

    def profiles(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((self.path / "profiles").iterdir())}
