"""Lab snapshots: every VM saved at one moment, and the lab brought back to it.

Save: every VM paused (all at once, so their states agree), each saved inside
its overlay by QEMU (``VmEngine.snapshot``), each overlay copied into its
host's store, every VM resumed. Restore: the links held (every frame queued in
them dropped: none may reach the restored past), every VM paused and loaded
in place — or, when its overlay does not hold the snapshot (the lab was
deployed again since) or its VM is gone, re-created from the store paused,
then loaded — the links set as they were saved, every VM resumed at once,
then each asked to be ready and its clock set.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from ..errors import RuntimeFailure, listing
from ..plan.model import LinkSettings, NodePlan, Plan
from ..runtime.hosts import Hosts, all_settled
from ..snapshots import (
    Snapshot,
    VmSnapshot,
    argv_value,
    differences,
    hardware,
    remove_record,
    restore_key,
    save_snapshot,
)
from ..state import LabState, save_state
from .events import Event, Progress
from .node import reach_resumed, start_process

T = TypeVar("T")
HEADROOM_MIB = 256  # beyond the estimate, so a save never fills a disk to the brim


async def _each(nodes: Sequence[NodePlan], work: Callable[[NodePlan], Awaitable[T]]) -> list[T]:
    return await all_settled(work(node) for node in nodes)


def _per_host(nodes: Sequence[NodePlan]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for node in nodes:
        found.setdefault(node.host, []).append(node.name)
    return found


async def _check_space(plan: Plan, hosts: Hosts) -> None:
    """Each host's free disk against what a save writes there: each VM's memory and
    overlay (an estimate: its memory size), once into the overlay, once into the store."""
    short = []
    for name, nodes in _per_host(plan.nodes).items():
        need = 2 * sum(plan.node(n).memory for n in nodes) + HEADROOM_MIB
        free = (await hosts[name].resources()).disk_free_mib
        if free < need:
            short.append(f"{name}: {free} MiB free under its NEWTLAB_HOME, about {need} MiB "
                         f"needed (the memory of {', '.join(nodes)}, twice)")  # fmt: skip
    if short:
        raise RuntimeFailure(listing("not enough disk for the snapshot; nothing was saved",
                                     short))  # fmt: skip


async def _require_running(state: LabState, hosts: Hosts, what: str) -> None:
    stopped = [
        node.name
        for node in state.plan.nodes
        if not await hosts[node.host].engine.running(
            state.name, node.name, state.nodes[node.name].pid
        )
    ]
    if stopped:
        raise RuntimeFailure(
            f"{what} needs every VM of lab {state.name} running; not running: "
            f"{', '.join(stopped)} — `newtlab start {' '.join(stopped)}` first"
        )


async def _running_facts(hosts: Hosts, lab: str, node: NodePlan) -> dict[str, str]:
    """What a saved state of the node's running VM needs again (``VmEngine.vm_facts``)."""
    machine = argv_value(node.qemu_argv, "-machine")
    return await hosts[node.host].engine.vm_facts(lab, node.name, machine)


async def save(state: LabState, hosts: Hosts, name: str, progress: Progress) -> Snapshot:
    """Save every VM of the lab at one moment, with its links' settings, as ``name``."""
    plan = state.plan
    await _require_running(state, hosts, "a snapshot")
    await _check_space(plan, hosts)

    facts = await _each(plan.nodes, lambda node: _running_facts(hosts, state.name, node))
    found = dict(zip((n.name for n in plan.nodes), facts, strict=True))
    saved: list[str] = []

    async def save_one(node: NodePlan) -> None:
        await hosts[node.host].engine.snapshot(state.name, node.name, "save", name)
        saved.append(node.name)
        progress(Event(node.name, "saved"))

    progress(Event("", "snapshot", f"pausing {len(plan.nodes)} VMs"))
    paused_at = time.monotonic()
    await _set_running(state, hosts, plan.nodes, False)
    try:
        await _each(plan.nodes, save_one)
        for host, nodes in _per_host(plan.nodes).items():
            progress(Event("", "snapshot", f"copying {', '.join(nodes)} into {host}'s store"))
        await all_settled(hosts[host].keep_snapshot(state.name, name, nodes)
                          for host, nodes in _per_host(plan.nodes).items())  # fmt: skip
    except BaseException:
        await _forget(state, hosts, name, saved)
        raise
    finally:
        await _set_running(state, hosts, plan.nodes, True)
        paused = round(time.monotonic() - paused_at, 2)
    try:
        trimmed = await all_settled(hosts[host].trim_snapshot(state.name, name)
                                    for host in _per_host(plan.nodes))  # fmt: skip
    except BaseException:
        await _forget(state, hosts, name, saved)
        raise
    kept = {node: info for part in trimmed for node, info in part.items()}
    snapshot = Snapshot(
        name=name,
        lab=state.name,
        created=datetime.now(UTC),
        paused_seconds=paused,
        plan=plan,
        links={link.name: state.link_settings(link.name) for link in plan.links},
        vms={node.name: VmSnapshot(
            host=node.host, hardware=hardware(node), qemu=found[node.name]["qemu"],
            machine=found[node.name]["machine"], accel=plan.accels.get(node.host, plan.accel),
            cpu=argv_value(node.qemu_argv, "-cpu"), **kept[node.name],
        ) for node in plan.nodes},
    )  # fmt: skip
    save_snapshot(snapshot, Path(state.ssh_key_path))
    progress(Event("", "snapshot", f"{name}: VMs paused {paused} s"))
    return snapshot


async def _set_running(
    state: LabState, hosts: Hosts, nodes: Sequence[NodePlan], running: bool
) -> None:
    await _each(nodes, lambda n: hosts[n.host].engine.set_running(state.name, n.name, running))


async def _forget(state: LabState, hosts: Hosts, name: str, saved: Sequence[str]) -> None:
    """Undo a save that failed half-way: the states saved in overlays, the store's copies."""
    for node in saved:
        host = hosts[state.plan.node(node).host]
        with contextlib.suppress(RuntimeFailure):  # the store's part matters; this is tidying
            await host.engine.snapshot(state.name, node, "delete", name)
    await all_settled(
        hosts[h].remove_snapshot(state.name, name) for h in _per_host(state.plan.nodes)
    )


async def delete(snapshot: Snapshot, hosts: Hosts, state: LabState | None) -> None:
    """Remove ``snapshot`` from every host's store and from the running lab's overlays."""
    if state is not None:
        for node in state.plan.nodes:
            host = hosts[node.host]
            if snapshot.name not in await host.snapshot_tags(state.name, node.name):
                continue
            if await host.engine.running(state.name, node.name, state.nodes[node.name].pid):
                await host.engine.snapshot(state.name, node.name, "delete", snapshot.name)
            else:
                await host.delete_snapshot_tag(state.name, node.name, snapshot.name)
    await all_settled(hosts[h].remove_snapshot(snapshot.lab, snapshot.name)
                      for h in {vm.host for vm in snapshot.vms.values()})  # fmt: skip
    remove_record(snapshot.lab, snapshot.name)


async def refuse_differences(
    snapshot: Snapshot, plan: Plan, hosts: Hosts, in_place: Sequence[str] = ()
) -> None:
    """Compare what the snapshot needs with the lab and its hosts now; refuse with each
    difference. ``in_place``: nodes whose running VM loads the state (asked directly)."""

    async def facts(node: NodePlan) -> dict[str, object]:
        if node.name in in_place:
            return dict(await _running_facts(hosts, plan.lab, node))
        return await hosts[node.host].engine.installed_facts()

    found = dict(zip((n.name for n in plan.nodes), await _each(plan.nodes, facts), strict=True))
    problems = differences(snapshot, plan, found)
    if problems:
        raise RuntimeFailure(
            listing(f"snapshot {snapshot.name} cannot be restored into lab {plan.lab}", problems)
        )


async def start_saved(
    state: LabState, hosts: Hosts, node: NodePlan, snapshot: Snapshot, progress: Progress
) -> None:
    """Start a VM whose overlay was staged from the store, held in its saved state."""
    host, machine = hosts[node.host], snapshot.vms[node.name].machine
    await start_process(state, host, node, progress,
                        launch=lambda: host.engine.start_saved(state.name, node, snapshot.name,
                                                               machine))  # fmt: skip
    progress(Event(node.name, "loaded", snapshot.name))


async def resume_all(state: LabState, hosts: Hosts, snapshot: Snapshot, progress: Progress) -> None:
    """The links set as saved, then every VM resumed at once, then each made ready."""
    state.links = {name: s for name, s in snapshot.links.items() if s.bridge()}
    save_state(state)
    for link in state.plan.links:
        wanted = snapshot.links.get(link.name, LinkSettings())
        await hosts[link.worker_host].datapath.shape(state.name, link.a, wanted)
    await _set_running(state, hosts, state.plan.nodes, True)
    failures = await _failures(
        state.plan.nodes, lambda n: reach_resumed(state, hosts[n.host], n, progress)
    )
    if failures:
        raise RuntimeFailure(listing("restored, but not ready", failures))


async def _failures(
    nodes: Sequence[NodePlan], work: Callable[[NodePlan], Awaitable[None]]
) -> list[str]:
    """``work`` on every node at once, each to its end; why each that failed did."""
    results = await asyncio.gather(*(work(node) for node in nodes), return_exceptions=True)
    return [str(r) for r in results if isinstance(r, BaseException)]


async def restore(state: LabState, hosts: Hosts, snapshot: Snapshot, progress: Progress) -> None:
    """Bring the deployed lab back to ``snapshot``: each VM in place where it can be,
    re-created from the store where not."""
    plan = state.plan
    in_place = []
    for node in plan.nodes:
        host = hosts[node.host]
        alive = await host.engine.running(state.name, node.name, state.nodes[node.name].pid)
        if alive and snapshot.name in await host.snapshot_tags(state.name, node.name):
            in_place.append(node.name)
    await refuse_differences(snapshot, plan, hosts, in_place)
    restore_key(snapshot, Path(state.ssh_key_path))  # the key its guests trust
    progress(Event("", "restore", "holding the links: frames queued in them are dropped"))
    for link in plan.links:
        await hosts[link.worker_host].datapath.shape(state.name, link.a, LinkSettings(down=True))
    staying = [plan.node(n) for n in in_place]
    await _set_running(state, hosts, staying, False)

    async def back(node: NodePlan) -> None:
        host = hosts[node.host]
        if node.name in in_place:
            await host.engine.snapshot(state.name, node.name, "load", snapshot.name)
            progress(Event(node.name, "loaded", f"{snapshot.name}, in place"))
            return
        record = state.nodes[node.name]
        if await host.engine.running(state.name, node.name, record.pid):
            await host.engine.stop(state.name, node.name, record.pid, 0)
        saved = snapshot.vms[node.name]
        await host.stage_snapshot(
            state.name, snapshot.name, node.name, saved.base_bytes, saved.base_mtime_ns
        )
        await start_saved(state, hosts, node, snapshot, progress)

    failures = await _failures(plan.nodes, back)
    for name in {node.host for node in staying}:  # libvirt may load into a new QEMU
        for process in await hosts[name].engine.processes(state.name):
            if process.node in state.nodes and process.node in in_place:
                state.nodes[process.node].pid = process.pid
    save_state(state)
    if failures:  # the lab as it was, running again: nothing left paused or cut
        for link in plan.links:
            settings = state.link_settings(link.name)
            await hosts[link.worker_host].datapath.shape(state.name, link.a, settings)
        await _failures(
            staying, lambda n: hosts[n.host].engine.set_running(state.name, n.name, True)
        )
        raise RuntimeFailure(listing(f"restoring {snapshot.name} failed", failures))
    await resume_all(state, hosts, snapshot, progress)
