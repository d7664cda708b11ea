"""Deploy: from a plan to running, reachable VMs (LLD §12).

State is saved before the first process starts and after every step, and
each PID is recorded as soon as it exists, so a deploy that fails or is
killed half-way can always be destroyed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from .. import layout
from ..errors import LabStateError, PortConflictError, RuntimeFailure
from ..home import ensure_private_dir, lab_dir
from ..plan.model import Plan
from ..profiles import patch_profiles
from ..runtime import bridge, disk, procs
from ..runtime.portprobe import probe_plan
from ..runtime.ssh import create_key_pair
from ..state import BridgeState, LabState, NodeState, save_state, state_path
from .events import Event, Progress
from .node import bring_up, start_process


def check_not_deployed(name: str) -> None:
    if state_path(name).exists():
        raise LabStateError(
            f"lab {name!r} is already deployed — `newtlab destroy {name}` first, "
            "or deploy with --force to replace it"
        )
    leftovers = sorted(procs.lab_vms(name)) + procs.find(bridge.tag(name))
    if leftovers:
        raise LabStateError(
            f"processes of lab {name!r} are running without state (pids "
            f"{', '.join(map(str, leftovers))}) — `newtlab destroy {name}` removes them"
        )


def check_images(plan: Plan) -> None:
    problems = []
    for node in plan.nodes:
        try:
            disk.check_base_image(node.image, node.name)
        except RuntimeFailure as exc:
            problems.append(str(exc))
    if problems:
        raise RuntimeFailure("\n".join(problems))


def _new_state(plan: Plan, directory: Path, accel_note: str) -> LabState:
    for sub in layout.SUBDIRS:
        ensure_private_dir(directory / sub)
    key = directory / layout.SSH_KEY
    create_key_pair(key)
    return LabState(
        name=plan.lab,
        created=datetime.now(UTC),
        spec_dir=plan.spec_dir,
        ssh_key_path=str(key),
        plan=plan,
        nodes={n.name: NodeState() for n in plan.nodes},
        accel_note=accel_note,
    )


async def deploy(plan: Plan, progress: Progress, accel_note: str = "") -> LabState:
    """Deploy ``plan``; the caller holds the lab lock and checked for stale state."""
    conflicts = probe_plan(plan)
    if conflicts:
        raise PortConflictError(conflicts)
    check_images(plan)
    directory = ensure_private_dir(lab_dir(plan.lab))
    state = _new_state(plan, directory, accel_note)
    save_state(state)

    for node in plan.nodes:
        progress(Event(node.name, "overlay"))
        disk.create_overlay(node.image, directory / layout.overlay(node.name))
        state.nodes[node.name].phase = "overlay"
    save_state(state)

    for host, bridge_plan in plan.bridges.items():
        progress(Event("", "bridge", f"newtlink on {host}: {bridge_plan.links} links"))
        pid = bridge.start(plan, bridge_plan, directory)
        state.bridges[host] = BridgeState(
            pid=pid,
            host=host,
            stats_addr=f"127.0.0.1:{bridge_plan.stats_port}",
            stats_unix=str(directory / layout.BRIDGE_SOCKET),
        )
        save_state(state)

    for node in plan.nodes:
        start_process(state, directory, node, progress)

    results = await asyncio.gather(
        *(bring_up(state, directory, node, progress) for node in plan.nodes),
        return_exceptions=True,
    )
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    if failures:
        raise RuntimeFailure(
            "deploy failed:\n  " + "\n  ".join(failures) + f"\nThe lab is left as it is for "
            f"inspection (`newtlab logs NODE`); `newtlab destroy {plan.lab}` removes it."
        )

    progress(Event("", "profiles", "writing ssh_port, console_port, mgmt_ip into profiles"))
    state.patched_profiles = patch_profiles(plan, directory)
    save_state(state)
    progress(Event("", "deployed"))
    return state
