"""A lab as a drawing sees it: devices, the VMs that hold virtual hosts, servers, links.

Built from a plan alone (``newtlab graph -S DIR``) or from a deployed lab's
plan and live status (``newtlab graph LAB``), which adds each device's state
and each link's counters. The formats (``mermaid``, ``dot``, ``html``) only
draw this; none of them looks at a plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ops.status import LabStatus
from ..plan.model import LOCAL_HOST, Plan


@dataclass(frozen=True)
class Device:
    """A box in the drawing: a VM, or a virtual host inside ``vm``."""

    name: str
    kind: str  # the platform's device type (switch, router, host, …)
    platform: str
    server: str  # '' on a single machine
    vm: str = ""  # for a virtual host, the host VM holding it
    status: str = ""  # '' when drawn from a plan alone


@dataclass(frozen=True)
class Edge:
    a: str
    a_iface: str
    z: str
    z_iface: str
    connected: bool | None = None  # None when drawn from a plan alone
    a_to_z_bytes: int = 0
    z_to_a_bytes: int = 0


@dataclass(frozen=True)
class Graph:
    lab: str
    devices: list[Device]
    edges: list[Edge]
    servers: list[str] = field(default_factory=list)  # empty on a single machine
    host_vms: dict[str, str] = field(default_factory=dict)  # host VM → its server ('' local)
    live: bool = False  # drawn from a deployed lab's status

    def groups(self) -> list[Group]:
        """What each server holds (one group, server '', on a single machine)."""
        return [
            Group(
                server,
                [d for d in self.devices if d.server == server and not d.vm],
                {
                    vm: [d for d in self.devices if d.vm == vm]
                    for vm, where in self.host_vms.items()
                    if where == server
                },
            )
            for server in self.servers or [""]
        ]


@dataclass(frozen=True)
class Group:
    server: str  # '' on a single machine
    devices: list[Device]  # the VMs that are devices themselves
    host_vms: dict[str, list[Device]]  # host VM → the virtual hosts inside it


def _split(end: str) -> tuple[str, str]:
    device, _, iface = end.partition(":")
    return device, iface


def build_graph(plan: Plan, status: LabStatus | None = None) -> Graph:
    """The drawing of ``plan``; with ``status``, its devices' states and links' traffic."""
    pooled = [h.name for h in plan.hosts if h.name != LOCAL_HOST]
    state = {n.name: n.status for n in status.nodes} if status else {}
    devices: list[Device] = []
    host_vms: dict[str, str] = {}
    for node in plan.nodes:
        server = node.host if pooled else ""
        if node.hosts:
            host_vms[node.name] = server
            devices += [
                Device(vhost.name, "host", node.platform, server, node.name,
                       state.get(node.name, ""))
                for vhost in node.vhosts
            ]  # fmt: skip
        else:
            devices.append(
                Device(node.name, node.device_type, node.platform, server, "",
                       state.get(node.name, ""))
            )  # fmt: skip
    live = {(link.a, link.z): link for link in status.links} if status else {}
    edges = []
    for link in plan.links:
        (a, a_iface), (z, z_iface) = _split(link.a), _split(link.z)
        seen = live.get((link.a, link.z))
        edges.append(
            Edge(a, a_iface, z, z_iface)
            if seen is None
            else Edge(a, a_iface, z, z_iface, seen.connected,
                      int(seen.stats.get("a_to_z_bytes", 0)),
                      int(seen.stats.get("z_to_a_bytes", 0)))
        )  # fmt: skip
    return Graph(plan.lab, devices, edges, pooled, host_vms, status is not None)
