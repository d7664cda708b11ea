"""The lab's newtlink bridge process on this machine: its config and its start."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .. import layout
from ..errors import RuntimeFailure
from ..fsutil import atomic_write
from ..plan.model import BridgePlan, Plan
from . import procs


def tag(lab: str) -> procs.Tag:
    return procs.Tag("newtlink", lab)


def bridge_config(plan: Plan, bridge: BridgePlan, lab_dir: Path) -> dict[str, Any]:
    """newtlink's config for the links bridged on ``bridge.host``."""
    links = [
        {
            "a": ln.a,
            "z": ln.z,
            "a_port": ln.a_port,
            "z_port": ln.z_port,
            "a_bind": ln.a_bind,
            "z_bind": ln.z_bind,
            "a_allow": ln.a_allow,
            "z_allow": ln.z_allow,
        }
        for ln in plan.links
        if ln.worker_host == bridge.host
    ]
    return {
        "lab": plan.lab,
        "links": links,
        "stats_addr": f"{bridge.stats_bind}:{bridge.stats_port}",
        "stats_unix": str(lab_dir / layout.BRIDGE_SOCKET),
    }


def start(plan: Plan, bridge: BridgePlan, lab_dir: Path, timeout: float = 15) -> int:
    """Start newtlink and wait for its ``READY <pid>`` line (all listeners open)."""
    config = lab_dir / layout.BRIDGE_CONFIG
    atomic_write(config, json.dumps(bridge_config(plan, bridge, lab_dir), indent=2).encode(), 0o600)
    log_path = lab_dir / layout.BRIDGE_LOG
    log_path.parent.mkdir(exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    argv = [sys.executable, "-m", "newtlab.runtime.newtlink", str(config), "--lab", plan.lab]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=lab_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    ready = f"READY {proc.pid}".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = log_path.read_bytes()[offset:]
        if ready in output:
            return proc.pid
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=5)
    lines = log_path.read_bytes()[offset:].decode(errors="replace").strip().splitlines()
    reason = lines[-1] if lines else f"no READY line within {timeout:.0f} s"
    raise RuntimeFailure(f"newtlink bridge did not start: {reason} (see {log_path})")
