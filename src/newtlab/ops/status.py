"""Status: what the state says, checked against each host's live processes and bridge."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from ..plan.impairments import describe
from ..plan.model import NodePlan
from ..runtime.datapaths.base import Condition, LinksView
from ..runtime.host import Host
from ..runtime.hosts import Hosts
from ..runtime.processes import LabProcess
from ..state import LabState


@dataclass
class HostView:
    """One round of questions to one host: the lab's VMs there and its datapath."""

    vms: list[LabProcess] = field(default_factory=list)
    links: LinksView = field(default_factory=LinksView)
    unreachable: str = ""  # why the host could not be asked, if it could not

    @property
    def condition(self) -> Condition:
        """The datapath's condition (see ``LinksView``); ``unknown`` if unreachable."""
        return "unknown" if self.unreachable else self.links.condition

    def vm_alive(self, node: str, pid: int) -> bool:
        return any(p.pid == pid and p.node == node for p in self.vms)


async def look(host: Host, lab: str) -> HostView:
    vms, links = await asyncio.gather(host.engine.processes(lab), host.datapath.survey(lab))
    return HostView(vms, links)


async def look_all(hosts: Hosts, lab: str) -> dict[str, HostView]:
    """One round trip per reachable host; unreachable ones are views saying why."""
    views = await asyncio.gather(*(look(host, lab) for host in hosts.values()))
    found = dict(zip(hosts, views, strict=True))
    found.update({name: HostView(unreachable=why) for name, why in hosts.unreachable.items()})
    return found


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


class NodeStatus(BaseModel):
    name: str
    device_type: str
    platform: str
    host: str
    status: str = Field(description="running, starting, stopped, exited, failed, pending, unknown")
    phase: str = Field(description="what a starting node is doing, e.g. the probe it waits on")
    pid: int
    ssh_port: int
    console_port: int | None = Field(description="None: a Unix socket in the lab directory")
    console: str = Field(description="where the console listens: a Unix socket (relative to "
                         "the lab directory on its host) or 127.0.0.1:PORT")  # fmt: skip
    nic_sockets: dict[str, str] = Field(
        description="each linked NIC (guest name) → its Unix socket, which the bridge dials"
    )
    ssh_user: str
    hosts: list[str] = Field(description="the virtual hosts of a host VM")
    boot_seconds: float | None
    error: str


class VhostInterfaceStatus(BaseModel):
    name: str
    address: str


class VhostStatus(BaseModel):
    """A virtual host: its VM's process and ports, its own user and addresses."""

    name: str
    id: str = Field(description="vhost:<vm>/<host>, how commands name it")
    vm: str
    namespace: str
    host: str
    status: str
    pid: int
    ssh_port: int
    console_port: int | None = Field(description="None: a Unix socket in the lab directory")
    console: str = Field(description="its VM's console")
    ssh_user: str
    interfaces: list[VhostInterfaceStatus]
    addresses: list[str]
    gateway: str


class LinkStatus(BaseModel):
    a: str
    z: str
    a_port: int
    z_port: int
    a_host: str
    z_host: str
    connected: bool
    state: str = Field(
        default="",
        description="connected, down, cable pulled, or unknown (a host of the link did not "
        "answer, so it could not be asked)",
    )
    stats: dict[str, Any] = Field(description="the A end's bridge counters for this link")
    down: bool = Field(default=False, description="its cable is pulled (`newtlab link down`)")
    impairment: str = Field(default="", description="what `newtlab link set` set, in words")


class BridgeStatus(BaseModel):
    host: str
    state: str = Field(description="up, restarting, unsupervised, down or unknown")
    pid: int = Field(description="its supervisor, as recorded at start")
    supervisor_pids: list[int]
    bridge_pid: int
    restarts: int
    up_since: float | None = Field(description="when the running bridge (re)started")
    links: int


class LabStatus(BaseModel):
    """A deployed lab as its hosts see it now (``newtlab status --json``)."""

    lab: str
    created: str
    spec_dir: str
    accel: str
    accels: dict[str, str]
    accel_note: str
    nodes: list[NodeStatus]
    vhosts: list[VhostStatus]
    links: list[LinkStatus]
    bridges: list[BridgeStatus]
    unreachable: dict[str, str] = Field(description="server → why it did not answer")

    def running(self) -> int:
        return sum(1 for n in self.nodes if n.status == "running")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _bridge(host: str, state: LabState, view: HostView) -> BridgeStatus:
    record = state.bridges.get(host)
    stats = view.links.stats or {}
    return BridgeStatus(
        host=host,
        state=view.condition,
        pid=record.pid if record else 0,
        supervisor_pids=[p.pid for p in view.links.processes if p.kind == "supervisor"],
        bridge_pid=stats.get("pid", 0),
        restarts=stats.get("restarts", 0),
        up_since=stats.get("started"),
        links=len(state.plan.bridges[host].links) if host in state.plan.bridges else 0,
    )


def _link_stats(view: HostView, a: str, z: str) -> dict[str, Any]:
    for entry in (view.links.stats or {}).get("links", []):
        if entry.get("a") == a and entry.get("z") == z:
            return dict(entry)
    return {}


def _vhosts(node: NodeStatus, plan: NodePlan) -> list[VhostStatus]:
    """One row per virtual host of a host VM: the VM's process and ports, its own addresses."""
    return [
        VhostStatus(
            name=vhost.name,
            id=f"vhost:{vhost.vm}/{vhost.name}",
            vm=vhost.vm,
            namespace=vhost.namespace,
            host=node.host,
            status=node.status,
            pid=node.pid,
            ssh_port=node.ssh_port,
            console_port=node.console_port,
            console=node.console,
            ssh_user=vhost.name,
            interfaces=[
                VhostInterfaceStatus(name=i.name, address=i.address) for i in vhost.interfaces
            ],
            addresses=vhost.addresses,
            gateway=vhost.gateway,
        )
        for vhost in plan.vhosts
    ]


def lab_status(state: LabState, views: dict[str, HostView]) -> LabStatus:
    """A deployed lab's state checked against what its hosts report."""
    plan = state.plan
    nodes: list[NodeStatus] = []
    vhosts: list[VhostStatus] = []
    for node in plan.nodes:
        record = state.nodes.get(node.name)
        nodes.append(
            NodeStatus(
                name=node.name,
                device_type=node.device_type,
                platform=node.platform,
                host=node.host,
                status=node_status(state, node.name, views[node.host]),
                phase=record.phase if record else "",
                pid=record.pid if record else 0,
                ssh_port=node.ssh_port,
                console_port=node.console_port,
                console=node.console_endpoint,
                nic_sockets={nic.guest: nic.listen for nic in node.nics if nic.listen},
                ssh_user=node.ssh_user,
                hosts=node.hosts,
                boot_seconds=record.boot_seconds if record else None,
                error=views[node.host].unreachable or (record.error if record else ""),
            )
        )
        vhosts += _vhosts(nodes[-1], node)
    links = []
    for link in plan.links:
        settings = state.link_settings(link.name)
        # Each bridge on the link's hosts sees the link whole: its own VM's end and the
        # far one. Counters come from the A end's; the link is up when every one says so.
        hosts = {link.a_host, link.z_host}
        seen = [_link_stats(views[host], link.a, link.z) for host in hosts]
        connected = all(stats.get("connected", False) for stats in seen)
        unknown = any(views[host].unreachable for host in hosts)
        state_now = "unknown" if unknown else "connected" if connected else "down"
        links.append(
            LinkStatus(
                a=link.a,
                z=link.z,
                a_port=link.a_port,
                z_port=link.z_port,
                a_host=link.a_host,
                z_host=link.z_host,
                connected=connected and not unknown,
                state="cable pulled" if settings.down else state_now,
                stats=_link_stats(views[link.a_host], link.a, link.z),
                down=settings.down,
                impairment="; ".join(
                    f"{d} {text}"
                    for d, text in (("A→Z", describe(settings.a)), ("Z→A", describe(settings.z)))
                    if text
                ),
            )
        )
    return LabStatus(
        lab=state.name,
        created=state.created.isoformat(),
        spec_dir=state.spec_dir,
        accel=plan.accel,
        accels=dict(plan.accels),
        accel_note=state.accel_note,
        nodes=nodes,
        vhosts=vhosts,
        links=links,
        bridges=[_bridge(host, state, views[host]) for host in plan.bridges],
        unreachable={host: view.unreachable for host, view in views.items() if view.unreachable},
    )
