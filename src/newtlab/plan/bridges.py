"""The newtlink bridge of every host, and the config each one is started with.

VMs listen on Unix sockets in the lab directory (QEMU ``-netdev stream,server=on``;
a libvirt domain on its link end's port on loopback, ``nic_endpoint``)
and each host's one bridge dials its own VMs, redialling whenever one drops, so neither a VM
restart nor a bridge restart needs anything done to a VM. A link between two
servers is one TCP connection bridge to bridge: the link's ``worker_host``
listens on its own address, accepting only the other server, and the other
server's bridge dials it. The listening side uses the link port of the far
end (``LinkPlan.a_port``/``z_port``: the link's two reserved ports), so a
cross-host link needs no port beyond those.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..agent import layout
from .model import (
    LOOPBACK,
    BridgeLinkPlan,
    BridgePlan,
    BridgeSidePlan,
    Engine,
    HostPlan,
    LinkPlan,
    LinkSettings,
)


def bridge_hosts(links: list[LinkPlan]) -> list[str]:
    """Hosts that run a bridge: every host with at least one link end, sorted."""
    return sorted({h for link in links for h in (link.a_host, link.z_host)})


def trunk_port(link: LinkPlan) -> int:
    """The port of a cross-host link's bridge-to-bridge connection, on its worker host.

    It is the reserved port of the end that is not on the worker (the VMs' NICs
    listen on Unix sockets: nothing else uses the link ports).
    """
    return link.z_port if link.a_host == link.worker_host else link.a_port


def nic_endpoint(engine: Engine, vm: str, nic: int, port: int) -> str:
    """Where a linked NIC listens for its host's bridge: a Unix socket in the lab directory
    (no other user can take the NIC), or, for a libvirt domain, its link end's port on
    loopback (libvirt 9.0 has no Unix-socket NIC)."""
    return f"{LOOPBACK}:{port}" if engine == "libvirt" else layout.nic_socket(vm, nic)


def _side(link: LinkPlan, end: str, host: str, hosts: Mapping[str, HostPlan]) -> BridgeSidePlan:
    name, end_host, vm, nic, port = (
        (link.a, link.a_host, link.a_vm, link.a_nic, link.a_port)
        if end == "a"
        else (link.z, link.z_host, link.z_vm, link.z_nic, link.z_port)
    )
    if end_host == host:  # our own VM, where its NIC listens
        engine = hosts[host].engine
        listen = nic_endpoint(engine, vm, nic, port)
        return BridgeSidePlan(name=name, dial=listen if engine == "libvirt" else f"unix:{listen}")
    trunk = f"{hosts[link.worker_host].ip}:{trunk_port(link)}"
    if host == link.worker_host:  # the far end's bridge connects to us, and only it
        return BridgeSidePlan(name=name, listen=trunk, allow=[hosts[end_host].peer_ip])
    return BridgeSidePlan(name=name, dial=trunk, source=hosts[host].source_address)


def bridge_link(link: LinkPlan, host: str, hosts: Mapping[str, HostPlan]) -> BridgeLinkPlan:
    """How ``host``'s bridge relays ``link`` (one of whose ends is on ``host``)."""
    return BridgeLinkPlan(
        a=_side(link, "a", host, hosts),
        z=_side(link, "z", host, hosts),
        worker=host == link.worker_host,
    )


def plan_bridges(links: list[LinkPlan], hosts: Mapping[str, HostPlan]) -> dict[str, BridgePlan]:
    return {
        host: BridgePlan(
            host=host,
            links=[
                bridge_link(link, host, hosts)
                for link in links
                if host in (link.a_host, link.z_host)
            ],
        )
        for host in bridge_hosts(links)
    }


def newtlink_config(
    lab: str, bridge: BridgePlan, settings: Mapping[str, LinkSettings] | None = None
) -> dict[str, Any]:
    """The JSON config newtlink runs with (the host adds its stats and control sockets,
    Unix sockets in the lab directory: a bridge listens on no TCP port of its own).

    ``settings``: by link name, each link's impairment and cable state, given to the
    bridge of the link's worker host only (frames are impaired once).
    """
    links = []
    for entry in bridge.links:
        config: dict[str, Any] = {"a": entry.a.name, "z": entry.z.name}
        wanted = (settings or {}).get(f"{entry.a.name}--{entry.z.name}")
        if wanted is not None and entry.worker and wanted.bridge():
            config["settings"] = wanted.bridge()
        for side, plan in (("a", entry.a), ("z", entry.z)):
            if plan.dial:
                config[f"{side}_dial"] = plan.dial
                if plan.source:
                    config[f"{side}_source"] = plan.source
            else:
                bind, _, port = plan.listen.rpartition(":")
                config.update(
                    {f"{side}_port": int(port), f"{side}_bind": bind, f"{side}_allow": plan.allow}
                )
        links.append(config)
    return {"lab": lab, "links": links}
