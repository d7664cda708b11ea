"""Human-readable renderings of plans and lab state (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .plan.model import Plan


def plan_tables(plan: Plan) -> list[Table]:
    nodes = Table(
        title=f"Lab {plan.lab} — {len(plan.nodes)} VMs ({plan.accel})", title_justify="left"
    )
    for column in ("NODE", "TYPE", "PLATFORM", "HOST", "SSH", "CONSOLE", "MEM", "CPU", "NICS"):
        nodes.add_column(column)
    for node in plan.nodes:
        name = node.name + (f" ({', '.join(node.hosts)})" if node.hosts else "")
        nodes.add_row(
            name,
            node.device_type,
            node.platform,
            node.host,
            str(node.ssh_port),
            str(node.console_port),
            str(node.memory),
            str(node.cpus),
            str(len(node.nics)),
        )
    links = Table(title=f"{len(plan.links)} links", title_justify="left")
    for column in ("A", "Z", "A PORT", "Z PORT", "BRIDGE"):
        links.add_column(column)
    for link in plan.links:
        links.add_row(link.a, link.z, str(link.a_port), str(link.z_port), link.worker_host)
    return [nodes, links] if plan.links else [nodes]


def print_plan(console: Console, plan: Plan) -> None:
    for table in plan_tables(plan):
        console.print(table)
    for bridge in plan.bridges.values():
        console.print(
            f"bridge on {bridge.host}: {bridge.links} links, stats on "
            f"{bridge.stats_bind}:{bridge.stats_port}"
        )
