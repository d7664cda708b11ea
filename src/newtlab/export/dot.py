"""A graph in Graphviz DOT (``dot -Tsvg``): servers and host VMs as clusters."""

from __future__ import annotations

import json

from .colors import LINK_DOWN, LINK_UP, fill
from .graph import Device, Graph


def _q(text: str) -> str:
    return json.dumps(text)  # a DOT string literal: double quotes, backslash escapes


def to_dot(graph: Graph) -> str:
    lines = [f"graph {_q(graph.lab)} {{", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fontname="sans-serif"];',
             '  edge [fontname="sans-serif", fontsize=10];']  # fmt: skip

    def box(device: Device, indent: str) -> None:
        text = "\n".join(filter(None, (device.name, device.platform, device.status)))
        color = _q(fill(device.status))
        lines.append(f"{indent}{_q(device.name)} [label={_q(text)}, fillcolor={color}];")

    for group in graph.groups():
        indent = "    " if group.server else "  "
        if group.server:
            lines.append(f"  subgraph {_q('cluster_server_' + group.server)} {{")
            lines.append(f"    label={_q('server ' + group.server)};")
        for device in group.devices:
            box(device, indent)
        for vm, vhosts in group.host_vms.items():
            lines.append(f"{indent}subgraph {_q('cluster_vm_' + vm)} {{")
            lines.append(f"{indent}  label={_q(vm)}; style=dashed;")
            for vhost in vhosts:
                box(vhost, indent + "  ")
            lines.append(f"{indent}}}")
        if group.server:
            lines.append("  }")
    for edge in graph.edges:
        attributes = [f"taillabel={_q(edge.a_iface)}", f"headlabel={_q(edge.z_iface)}"]
        if edge.connected is not None:
            attributes.append(f"color={_q(LINK_UP if edge.connected else LINK_DOWN)}")
            if not edge.connected:
                attributes.append("style=dashed")
        lines.append(f"  {_q(edge.a)} -- {_q(edge.z)} [{', '.join(attributes)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
