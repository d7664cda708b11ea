"""The lab's newtlink bridge on this machine: start it supervised, stop it, ask its stats.

It runs as ``newtlink --supervise``: a supervisor process that restarts the
bridge within a second whenever it dies, so one ``kill -9``, crash or OOM
costs the lab a second of frames and no VM restart (the bridge redials the
listening VMs). Only ``stop`` ends it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from . import AgentError, layout, procs
from .fsutil import atomic_write

try:
    from ..newtlink import launch, query_stats
except ImportError:  # shipped to a server: newtlink is a package of its own beside us
    from newtlink import launch, query_stats  # type: ignore[import-not-found,no-redef]


def start(lab_dir: Path, lab: str, config: dict[str, Any], timeout: float = 15) -> int:
    """Write the config, start the supervised bridge and wait for its ``READY <pid>`` line."""
    config = {
        **config,
        "stats_unix": str(lab_dir / layout.BRIDGE_SOCKET),
        "control_unix": str(lab_dir / layout.BRIDGE_CONTROL),
        "settings_file": str(lab_dir / layout.LINK_SETTINGS),
    }
    atomic_write(lab_dir / layout.BRIDGE_CONFIG, json.dumps(config, indent=2).encode(), 0o600)
    log_path = lab_dir / layout.BRIDGE_LOG
    log_path.parent.mkdir(exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            launch.command("--supervise", layout.BRIDGE_CONFIG, "--lab", lab),
            cwd=lab_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=launch.environment(),
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
        proc.terminate()  # the supervisor stops its bridge
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        proc.kill()
    proc.wait(timeout=5)
    lines = log_path.read_bytes()[offset:].decode(errors="replace").strip().splitlines()
    reason = lines[-1].removeprefix("newtlink: ") if lines else f"no READY within {timeout:.0f} s"
    raise AgentError(f"newtlink bridge did not start: {reason} (see {log_path})")


def stop(lab: str, timeout: float = 5.0) -> list[str]:
    """Stop the lab's supervisors first (each stops its bridge), then any orphaned bridge."""
    found = [(pid, kind) for pid, kind, _, _ in procs.processes(procs.NEWTLINK_KINDS, lab)]
    problems = []
    for pid, kind in sorted(found, key=lambda p: p[1] != "supervisor"):
        if not procs.terminate(pid, procs.bridge_tag(lab), timeout):
            problems.append(f"newtlink {kind} pid {pid} would not stop")
    return problems


def stats(lab_dir: Path) -> dict[str, Any] | None:
    """The bridge's stats document, or None if no bridge answers on its socket."""
    try:
        return query_stats(str(lab_dir / layout.BRIDGE_SOCKET), timeout=3)
    except (OSError, ValueError):
        return None
