"""Status: what the state says, checked against the live processes and bridge counters."""

from __future__ import annotations

from typing import Any

from ..runtime import bridge, procs, qemu
from ..state import LabState


def _node_status(state: LabState, name: str) -> str:
    record = state.nodes.get(name)
    if record is None:
        return "pending"
    alive = procs.is_ours(record.pid, qemu.tag(state.name, name))
    if record.status in ("running", "starting") and not alive:
        return "exited"
    if record.status in ("stopped", "pending") and alive:
        return "starting"
    return record.status


def bridge_stats(state: LabState) -> dict[tuple[str, str], dict[str, Any]]:
    """Per-link counters from every live bridge, keyed by (a, z)."""
    from ..runtime.newtlink import query_stats

    stats: dict[tuple[str, str], dict[str, Any]] = {}
    for record in state.bridges.values():
        if not procs.is_ours(record.pid, bridge.tag(state.name)):
            continue
        try:
            data = query_stats(record.stats_unix or record.stats_addr)
        except (OSError, ValueError):
            continue
        for link in data.get("links", []):
            stats[(link.get("a", ""), link.get("z", ""))] = link
    return stats


def lab_status(state: LabState) -> dict[str, Any]:
    """The JSON-able status of a deployed lab (``newtlab status --json``)."""
    plan = state.plan
    nodes = []
    for node in plan.nodes:
        record = state.nodes.get(node.name)
        nodes.append(
            {
                "name": node.name,
                "device_type": node.device_type,
                "platform": node.platform,
                "host": node.host,
                "status": _node_status(state, node.name),
                "phase": record.phase if record else "",
                "pid": record.pid if record else 0,
                "ssh_port": node.ssh_port,
                "console_port": node.console_port,
                "ssh_user": node.ssh_user,
                "hosts": node.hosts,
                "boot_seconds": record.boot_seconds if record else None,
                "error": record.error if record else "",
            }
        )
    counters = bridge_stats(state)
    links = []
    for link in plan.links:
        live = counters.get((link.a, link.z), {})
        links.append(
            {
                "a": link.a,
                "z": link.z,
                "a_port": link.a_port,
                "z_port": link.z_port,
                "worker_host": link.worker_host,
                "connected": bool(live.get("connected", False)),
                "stats": live,
            }
        )
    bridges = [
        {
            "host": b.host,
            "pid": b.pid,
            "running": procs.is_ours(b.pid, bridge.tag(state.name)),
            "stats_addr": b.stats_addr,
        }
        for b in state.bridges.values()
    ]
    return {
        "lab": state.name,
        "created": state.created.isoformat(),
        "spec_dir": state.spec_dir,
        "accel": plan.accel,
        "accel_note": state.accel_note,
        "nodes": nodes,
        "links": links,
        "bridges": bridges,
    }
