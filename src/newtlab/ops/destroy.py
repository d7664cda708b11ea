"""Destroy: stop every process of a lab, restore profiles, remove its state (LLD §13).

Continue-on-error: every step runs even if an earlier one failed, and all
failures are reported together. Processes are found both from the state and
by their argv tag, so a lab whose deploy was killed half-way (or whose state
is unreadable) is still cleaned up completely.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from ..errors import LabStateError, RuntimeFailure
from ..home import lab_dir
from ..profiles import restore_profiles
from ..runtime import bridge, procs, qemu
from ..state import LabState, load_state
from .events import Event, Progress


async def _stop_vms(
    state: LabState | None, name: str, directory: Path, grace: float, progress: Progress
) -> list[str]:
    """Stop every QEMU of the lab in parallel; the nodes that would not stop."""
    targets = procs.lab_vms(name)  # by tag: includes PIDs the state never recorded
    if state is not None:
        for node, record in state.nodes.items():
            if procs.is_ours(record.pid, qemu.tag(name, node)):
                targets[record.pid] = node

    async def stop_one(pid: int, node: str) -> str | None:
        progress(Event(node, "stopping"))
        gone = await qemu.stop(directory, name, node, pid, grace)
        progress(Event(node, "stopped" if gone else "error", failed=not gone))
        return None if gone else f"{node}: QEMU pid {pid} would not stop"

    results = await asyncio.gather(*(stop_one(p, n) for p, n in sorted(targets.items())))
    return [r for r in results if r]


def _stop_bridges(state: LabState | None, name: str) -> list[str]:
    tag = bridge.tag(name)
    pids = set(procs.find(tag))
    if state is not None:
        pids |= {b.pid for b in state.bridges.values() if procs.is_ours(b.pid, tag)}
    return [
        f"newtlink pid {pid} would not stop"
        for pid in sorted(pids)
        if not procs.terminate(pid, tag, 5.0)
    ]


async def destroy(name: str, progress: Progress, grace: float = 5.0) -> list[str]:
    """Remove lab ``name`` entirely; returns warnings. Raises if anything is left behind."""
    directory = lab_dir(name)
    try:
        state: LabState | None = load_state(name)
    except LabStateError as exc:
        state = None
        if directory.exists():
            progress(Event("", "warning", f"{exc}; cleaning up by process tags"))
    leftovers = procs.lab_vms(name) or procs.find(bridge.tag(name))
    if state is None and not directory.exists() and not leftovers:
        raise LabStateError(f"lab {name!r} not found — nothing to destroy (see `newtlab list`)")

    errors = await _stop_vms(state, name, directory, grace, progress)
    progress(Event("", "bridge", "stopping newtlink"))
    errors += _stop_bridges(state, name)
    warnings: list[str] = []
    if state is not None:
        progress(Event("", "profiles", "restoring profiles"))
        try:
            warnings += restore_profiles(state.plan, state.patched_profiles, directory)
        except OSError as exc:
            errors.append(f"restoring profiles: {exc}")
    if not errors:
        progress(Event("", "state", f"removing {directory}"))
        try:
            if directory.exists():
                shutil.rmtree(directory)
        except OSError as exc:
            errors.append(f"removing {directory}: {exc}")
    else:
        errors.append(f"state kept in {directory} so `newtlab destroy {name}` can retry")
    if errors:
        raise RuntimeFailure(
            f"destroy of {name} had {len(errors)} problems:\n  " + "\n  ".join(errors)
        )
    progress(Event("", "destroyed"))
    return warnings
