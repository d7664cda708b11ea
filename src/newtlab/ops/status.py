"""Status: what the state says, checked against each host's live processes and bridge."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..plan.model import NodePlan
from ..runtime.host import Host, LabProcess
from ..runtime.hosts import Hosts
from ..state import LabState


@dataclass
class HostView:
    """One round of questions to one host: its lab processes and its bridge's stats."""

    processes: list[LabProcess] = field(default_factory=list)
    stats: dict[str, Any] | None = None
    unreachable: str = ""  # why the host could not be asked, if it could not

    def pids(self, kind: str) -> list[int]:
        return [p.pid for p in self.processes if p.kind == kind]

    def vm_alive(self, node: str, pid: int) -> bool:
        return any(p.kind == "qemu" and p.pid == pid and p.node == node for p in self.processes)


async def look(host: Host, lab: str) -> HostView:
    processes, stats = await host.survey(lab)
    return HostView(processes, stats)


async def look_all(hosts: Hosts, lab: str) -> dict[str, HostView]:
    """One round trip per reachable host; unreachable ones are views saying why."""
    views = await asyncio.gather(*(look(host, lab) for host in hosts.values()))
    found = dict(zip(hosts, views, strict=True))
    found.update({name: HostView(unreachable=why) for name, why in hosts.unreachable.items()})
    return found


def bridge_condition(view: HostView) -> str:
    """``up``; ``restarting`` (its supervisor is bringing it back); ``unsupervised``
    (it runs, but nothing would restart it); ``down`` (links are cut until repaired);
    ``unknown`` (its server did not answer)."""
    if view.unreachable:
        return "unknown"
    supervised = bool(view.pids("supervisor"))
    answering = view.stats is not None
    if supervised:
        return "up" if answering else "restarting"
    return "unsupervised" if answering or view.pids("bridge") else "down"


def node_status(state: LabState, name: str, view: HostView) -> str:
    record = state.nodes.get(name)
    if record is None:
        return "pending"
    if view.unreachable:
        return "unknown"
    alive = view.vm_alive(name, record.pid)
    if record.status in ("running", "starting") and not alive:
        return "exited"
    if record.status in ("stopped", "pending") and alive:
        return "starting"
    return record.status


def _bridge(host: str, state: LabState, view: HostView) -> dict[str, Any]:
    record = state.bridges.get(host)
    stats = view.stats or {}
    return {
        "host": host,
        "state": bridge_condition(view),
        "pid": record.pid if record else 0,  # the supervisor, as recorded at start
        "supervisor_pids": view.pids("supervisor"),
        "bridge_pid": stats.get("pid", 0),
        "restarts": stats.get("restarts", 0),
        "up_since": stats.get("started"),  # when the running bridge (re)started
        "links": len(state.plan.bridges[host].links) if host in state.plan.bridges else 0,
    }


def _link_stats(view: HostView, a: str, z: str) -> dict[str, Any]:
    for entry in (view.stats or {}).get("links", []):
        if entry.get("a") == a and entry.get("z") == z:
            return dict(entry)
    return {}


def _vhosts(node: dict[str, Any], plan: NodePlan) -> list[dict[str, Any]]:
    """One row per virtual host of a host VM: the VM's process and ports, its own addresses."""
    return [
        {
            "name": vhost.name,
            "id": f"vhost:{vhost.vm}/{vhost.name}",
            "vm": vhost.vm,
            "namespace": vhost.namespace,
            "host": node["host"],
            "status": node["status"],
            "pid": node["pid"],
            "ssh_port": node["ssh_port"],
            "console_port": node["console_port"],
            "ssh_user": vhost.name,
            "interfaces": [{"name": i.name, "address": i.address} for i in vhost.interfaces],
            "addresses": vhost.addresses,
            "gateway": vhost.gateway,
        }
        for vhost in plan.vhosts
    ]


def lab_status(state: LabState, views: dict[str, HostView]) -> dict[str, Any]:
    """The JSON-able status of a deployed lab (``newtlab status --json``)."""
    plan = state.plan
    nodes: list[dict[str, Any]] = []
    vhosts: list[dict[str, Any]] = []
    for node in plan.nodes:
        record = state.nodes.get(node.name)
        nodes.append(
            {
                "name": node.name,
                "device_type": node.device_type,
                "platform": node.platform,
                "host": node.host,
                "status": node_status(state, node.name, views[node.host]),
                "phase": record.phase if record else "",
                "pid": record.pid if record else 0,
                "ssh_port": node.ssh_port,
                "console_port": node.console_port,
                "ssh_user": node.ssh_user,
                "hosts": node.hosts,
                "boot_seconds": record.boot_seconds if record else None,
                "error": views[node.host].unreachable or (record.error if record else ""),
            }
        )
        vhosts += _vhosts(nodes[-1], node)
    links = []
    for link in plan.links:
        # Each bridge on the link's hosts sees the link whole: its own VM's end and the
        # far one. Counters come from the A end's; the link is up when every one says so.
        seen = [_link_stats(views[host], link.a, link.z) for host in {link.a_host, link.z_host}]
        links.append(
            {
                "a": link.a,
                "z": link.z,
                "a_port": link.a_port,
                "z_port": link.z_port,
                "a_host": link.a_host,
                "z_host": link.z_host,
                "connected": all(stats.get("connected", False) for stats in seen),
                "stats": _link_stats(views[link.a_host], link.a, link.z),
            }
        )
    return {
        "lab": state.name,
        "created": state.created.isoformat(),
        "spec_dir": state.spec_dir,
        "accel": plan.accel,
        "accels": plan.accels,
        "accel_note": state.accel_note,
        "nodes": nodes,
        "vhosts": vhosts,
        "links": links,
        "bridges": [_bridge(host, state, views[host]) for host in plan.bridges],
        "unreachable": {host: view.unreachable for host, view in views.items() if view.unreachable},
    }
