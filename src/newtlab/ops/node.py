"""Bringing one node up (start, console bootstrap, SSH) and taking it down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ..errors import RuntimeFailure
from ..plan.model import NodePlan
from ..runtime import console, procs, qemu, ssh
from ..state import LabState, save_state
from .events import Event, Progress


def ssh_target(state: LabState, node: NodePlan) -> ssh.SSHTarget:
    host = "127.0.0.1" if node.listen_address == "127.0.0.1" else node.host_address
    return ssh.SSHTarget(host, node.ssh_port, node.ssh_user, node.ssh_pass, state.ssh_key_path)


def public_key(state: LabState) -> str:
    path = Path(state.ssh_key_path + ".pub") if state.ssh_key_path else None
    return path.read_text().strip() if path and path.exists() else ""


def start_process(state: LabState, lab_dir: Path, node: NodePlan, progress: Progress) -> None:
    """Start the node's QEMU and record its PID at once."""
    progress(Event(node.name, "starting", "QEMU"))
    record = state.nodes[node.name]
    record.status, record.phase, record.error = "starting", "qemu", ""
    record.started_at = time.time()
    try:
        record.pid = qemu.start(lab_dir, state.name, node)
    except RuntimeFailure as exc:
        record.status, record.error = "error", str(exc)
        save_state(state)
        progress(Event(node.name, "error", str(exc), failed=True))
        raise
    save_state(state)


async def _watch(state: LabState, lab_dir: Path, node: NodePlan) -> None:
    """Return when the node's QEMU is gone (so a boot wait can fail fast)."""
    tag = qemu.tag(state.name, node.name)
    while procs.is_ours(state.nodes[node.name].pid, tag):
        await asyncio.sleep(0.5)


async def _reach(state: LabState, node: NodePlan, progress: Progress) -> None:
    deadline = state.nodes[node.name].started_at + node.boot_timeout
    deadline = time.monotonic() + max(deadline - time.time(), 1)
    target = ssh_target(state, node)
    values = {
        "ssh_user": node.ssh_user,
        "ssh_pass": node.ssh_pass,
        "ssh_pubkey": public_key(state),
        "hostname": node.name,
    }
    phase = "console"

    def step(detail: str) -> None:
        progress(Event(node.name, phase, detail))

    progress(Event(node.name, phase, "waiting for login prompt"))
    await console.bootstrap(target.host, node.console_port, node.console, values, deadline, step)
    phase = "ssh"
    progress(Event(node.name, phase, "waiting for SSH login"))
    await ssh.wait_ready(target, deadline)


async def bring_up(state: LabState, lab_dir: Path, node: NodePlan, progress: Progress) -> None:
    """Console bootstrap then SSH readiness, failing fast if QEMU dies meanwhile."""
    record = state.nodes[node.name]
    record.phase = "booting"
    reach = asyncio.create_task(_reach(state, node, progress))
    watch = asyncio.create_task(_watch(state, lab_dir, node))
    try:
        done, _ = await asyncio.wait({reach, watch}, return_when=asyncio.FIRST_COMPLETED)
        if reach in done:
            reach.result()
        else:
            raise RuntimeFailure(qemu.exit_message(lab_dir, node.name))
    except (RuntimeFailure, OSError) as exc:
        reason = str(exc)
        if not procs.is_ours(record.pid, qemu.tag(state.name, node.name)):
            reason = qemu.exit_message(lab_dir, node.name)  # the real cause
        record.status, record.phase, record.error = "error", "failed", reason
        save_state(state)
        progress(Event(node.name, "error", reason, failed=True))
        raise RuntimeFailure(f"{node.name}: {reason}") from None
    finally:
        for task in (reach, watch):
            task.cancel()
        await asyncio.gather(reach, watch, return_exceptions=True)
    record.status, record.phase = "running", "ready"
    record.boot_seconds = round(time.time() - record.started_at, 1)
    save_state(state)
    progress(Event(node.name, "ready", f"SSH ready after {record.boot_seconds:.1f} s"))


async def stop_process(
    state: LabState, lab_dir: Path, node: str, grace: float, progress: Progress
) -> None:
    progress(Event(node, "stopping"))
    record = state.nodes[node]
    gone = await qemu.stop(lab_dir, state.name, node, record.pid, grace)
    if not gone:
        raise RuntimeFailure(f"{node}: QEMU (pid {record.pid}) did not stop")
    record.status, record.phase, record.pid = "stopped", "stopped", 0
    save_state(state)
    progress(Event(node, "stopped"))
