"""Deploy: from a plan to running, reachable VMs (LLD §12), on the plan's hosts.

State is saved before the first process starts and after every step, and
each PID is recorded as soon as it exists, so a deploy that fails or is
killed half-way can always be destroyed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ..errors import LabStateError, PortConflictError, RuntimeFailure
from ..home import ensure_private_dir, lab_dir
from ..plan.bridges import newtlink_config
from ..plan.model import Plan
from ..plan.ports import collect_ports
from ..profiles import patch_profiles
from ..runtime.agent import layout
from ..runtime.hosts import Hosts, each_host
from ..runtime.ssh import create_key_pair
from ..state import BridgeState, LabState, NodeState, save_state, state_path
from .events import Event, Progress
from .node import bring_up, start_process


async def check_not_deployed(name: str, hosts: Hosts) -> None:
    if state_path(name).exists():
        raise LabStateError(
            f"lab {name!r} is already deployed — `newtlab destroy {name}` first, "
            "or deploy with --force to replace it"
        )
    found = await each_host(hosts, lambda host: host.processes(name))
    leftovers = sorted(p.pid for processes in found for p in processes)
    if leftovers:
        raise LabStateError(
            f"processes of lab {name!r} are running without state (pids "
            f"{', '.join(map(str, leftovers))}) — `newtlab destroy {name}` removes them"
        )


async def port_conflicts(plan: Plan, hosts: Hosts) -> list[str]:
    """Ports the plan needs on ``hosts`` that something else holds, with their purpose."""
    uses = collect_ports(plan)
    found = await each_host(
        hosts, lambda host: host.probe_ports(u for u in uses if u.host == host.name)
    )
    return [line for lines in found for line in lines]


async def check_hosts(plan: Plan, hosts: Hosts) -> None:
    """Every port free and every base image usable, on every host; all problems at once."""
    conflicts = await port_conflicts(plan, hosts)
    if conflicts:
        raise PortConflictError(conflicts)
    problems = await asyncio.gather(
        *(hosts[node.host].check_image(node.image) for node in plan.nodes)
    )
    lines = [f"{n.name}: {p}" for n, p in zip(plan.nodes, problems, strict=True) if p]
    if lines:
        raise RuntimeFailure("\n".join(lines))


def _new_state(plan: Plan, accel_note: str) -> LabState:
    directory = ensure_private_dir(lab_dir(plan.lab))
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


async def start_bridge(state: LabState, hosts: Hosts, host: str, progress: Progress) -> None:
    """Start the bridge of ``host`` and record its supervisor's PID."""
    bridge = state.plan.bridges[host]
    progress(Event("", "bridge", f"newtlink on {host}: {len(bridge.links)} links"))
    pid = await hosts[host].start_bridge(state.name, newtlink_config(state.name, bridge))
    state.bridges[host] = BridgeState(pid=pid, host=host)
    save_state(state)


async def deploy(plan: Plan, hosts: Hosts, progress: Progress, accel_note: str = "") -> LabState:
    """Deploy ``plan``; the caller holds the lab lock and checked for stale state."""
    await check_hosts(plan, hosts)
    state = _new_state(plan, accel_note)
    save_state(state)
    await each_host(hosts, lambda host: host.prepare_lab(plan.lab))

    for node in plan.nodes:
        progress(Event(node.name, "overlay"))
        await hosts[node.host].create_overlay(plan.lab, node.name, node.image)
        state.nodes[node.name].phase = "overlay"
    save_state(state)

    # Bridges first: they dial each VM's NICs as soon as its QEMU listens.
    for host in plan.bridges:
        await start_bridge(state, hosts, host, progress)

    for node in plan.nodes:
        await start_process(state, hosts[node.host], node, progress)

    results = await asyncio.gather(
        *(bring_up(state, hosts[node.host], node, progress) for node in plan.nodes),
        return_exceptions=True,
    )
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    if failures:
        raise RuntimeFailure(
            "deploy failed:\n  " + "\n  ".join(failures) + f"\nThe lab is left as it is for "
            f"inspection (`newtlab logs NODE`); `newtlab destroy {plan.lab}` removes it."
        )

    progress(Event("", "profiles", "writing ssh_port, console_port, mgmt_ip into profiles"))
    state.patched_profiles = patch_profiles(plan, lab_dir(plan.lab))
    save_state(state)
    progress(Event("", "deployed"))
    return state
