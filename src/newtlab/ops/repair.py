"""Repair: bring back what died — a host's bridge, or a VM whose QEMU exited.

A bridge's supervisor restarts it on its own; this is for when the
supervisor is gone too (both killed, a reboot of the tool's processes, an
OOM that took both). VMs listen and the new bridge dials them, so repairing
a bridge restarts no VM. A node stopped on purpose (``newtlab stop``) stays
stopped.
"""

from __future__ import annotations

from ..errors import RuntimeFailure, listing
from ..runtime.hosts import Hosts
from ..state import LabState
from .datapath import ensure_bridge
from .events import Event, Progress
from .node import boot_each
from .status import look_all


async def repair(state: LabState, hosts: Hosts, progress: Progress) -> list[str]:
    """Restart what died; one line per thing done. Raises if a node would not come back."""
    views = await look_all(hosts, state.name)
    actions = []
    for host in state.plan.bridges:
        action = await ensure_bridge(state, hosts, host, views[host], progress)
        if action:
            actions.append(action)
    dead = [  # meant to run (or failed), and no QEMU: not those stopped on purpose
        node
        for node in state.plan.nodes
        if state.nodes[node.name].status in ("running", "starting", "error")
        and not views[node.host].vm_alive(node.name, state.nodes[node.name].pid)
    ]
    for node in dead:
        progress(Event(node.name, "repair", "its QEMU had exited: starting it again"))
    failures = await boot_each(state, hosts, dead, progress)
    actions += [
        f"{node.name}: its QEMU had exited: started again, ready"
        for node in dead
        if node.name not in failures
    ]
    if failures:
        raise RuntimeFailure(listing("repair could not bring back", failures.values()))
    return actions
