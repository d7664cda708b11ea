"""A graph as a Mermaid flowchart (GitHub and most Markdown viewers draw it)."""

from __future__ import annotations

from .colors import LINK_DOWN, LINK_UP, STATUS_FILL
from .graph import Device, Graph


def _label(device: Device) -> str:
    state = f" · {device.status}" if device.status else ""
    return f'"{device.name}<br/>{device.platform}{state}"'


def to_mermaid(graph: Graph) -> str:
    ids = {d.name: f"d{i}" for i, d in enumerate(graph.devices)}
    vm_ids = {vm: f"v{i}" for i, vm in enumerate(graph.host_vms)}
    lines = ["flowchart LR"]

    for s, group in enumerate(graph.groups()):
        indent = "    " if group.server else "  "
        if group.server:
            lines.append(f'  subgraph s{s}["server {group.server}"]')
        lines += [f"{indent}{ids[d.name]}[{_label(d)}]" for d in group.devices]
        for vm, vhosts in group.host_vms.items():
            lines.append(f'{indent}subgraph {vm_ids[vm]}["{vm}"]')
            lines += [f"{indent}  {ids[d.name]}[{_label(d)}]" for d in vhosts]
            lines.append(f"{indent}end")
        if group.server:
            lines.append("  end")
    for edge in graph.edges:
        ends = "—".join(filter(None, (edge.a_iface, edge.z_iface)))
        label = f'|"{ends}"|' if ends else ""
        lines.append(f"  {ids[edge.a]} ---{label} {ids[edge.z]}")
    if graph.live:
        for status, color in STATUS_FILL.items():
            lines.append(f"  classDef {status} fill:{color},stroke:#555")
        for device in graph.devices:
            if device.status in STATUS_FILL:
                lines.append(f"  class {ids[device.name]} {device.status}")
        for i, edge in enumerate(graph.edges):
            color = LINK_UP if edge.connected else LINK_DOWN
            dashed = "" if edge.connected else ",stroke-dasharray:4"
            lines.append(f"  linkStyle {i} stroke:{color},stroke-width:2px{dashed}")
    return "\n".join(lines) + "\n"
