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
from ..runtime.host import Host, Say
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
    """Before anything starts anywhere: every host has what labs need, every port is
    free, every base image is usable. Every problem on every host, reported at once."""
    machines = await each_host(hosts, lambda host: host.check_machine())
    conflicts = await port_conflicts(plan, hosts)
    images = await asyncio.gather(
        *(hosts[node.host].check_image(node.image) for node in plan.nodes)
    )
    problems = [line for lines in machines for line in lines]
    problems += [f"{n.name}: {p}" for n, p in zip(plan.nodes, images, strict=True) if p]
    if conflicts:
        raise PortConflictError(conflicts, problems)
    if problems:
        raise RuntimeFailure("cannot deploy:\n  " + "\n  ".join(problems))


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


async def _disks(plan: Plan, host: Host, state: LabState, upload: bool, progress: Progress) -> None:
    """Base images onto ``host`` (uploaded once if it lacks them), then each VM's overlay."""
    nodes = [n for n in plan.nodes if n.host == host.name]
    bases = {}
    for image in sorted({n.image for n in nodes}):
        say: Say = lambda line: progress(Event("", "upload", line))  # noqa: E731
        bases[image] = await host.provide_image(image, upload, say)
    for node in nodes:
        progress(Event(node.name, "overlay"))
        await host.create_overlay(plan.lab, node.name, bases[node.image])
        state.nodes[node.name].phase = "overlay"


async def _start_vms(plan: Plan, host: Host, state: LabState, progress: Progress) -> None:
    for node in plan.nodes:
        if node.host == host.name:
            await start_process(state, host, node, progress)


async def deploy(
    plan: Plan, hosts: Hosts, progress: Progress, accel_note: str = "", upload: bool = True
) -> LabState:
    """Deploy ``plan``; the caller holds the lab lock and checked for stale state.

    Each phase runs on every host at once; the next starts when all are done.
    """
    await check_hosts(plan, hosts)
    state = _new_state(plan, accel_note)
    save_state(state)
    await each_host(hosts, lambda host: host.prepare_lab(plan.lab))
    await each_host(hosts, lambda host: _disks(plan, host, state, upload, progress))
    save_state(state)
    # Bridges first: they dial each VM's NICs as soon as its QEMU listens.
    await asyncio.gather(*(start_bridge(state, hosts, host, progress) for host in plan.bridges))
    await each_host(hosts, lambda host: _start_vms(plan, host, state, progress))

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
