"""Shaping a deployed lab's links: impairment, cable pulls and captures.

A link is named by either end, ``NODE:IFACE``. Its settings live in the lab
state (what ``link show`` reports) and in the bridge of the link's worker
host, the one bridge every frame of the link crosses; that bridge keeps them
across its own restarts. A pulled cable also drops both VMs' carrier (QMP
``set_link``), so each guest sees its interface go down, as with a real
cable; a VM that starts again while its cable is out gets its carrier
dropped at once.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ..errors import RuntimeFailure
from ..plan.impairments import Direction, with_impairment, without_impairment
from ..plan.model import LinkPlan, LinkSettings, NodePlan, Plan
from ..runtime.host import Host
from ..runtime.hosts import Hosts
from ..state import LabState, save_state
from ..suggest import did_you_mean


def find_end(plan: Plan, end: str) -> tuple[LinkPlan, str]:
    """The link ending at ``end`` (``NODE:IFACE``) and which side of it that is."""
    for link in plan.links:
        if end in (link.a, link.z):
            return link, "a" if end == link.a else "z"
    node = end.partition(":")[0]
    ends = [e for link in plan.links for e in (link.a, link.z)]
    linked = sorted(e for e in ends if e.startswith(f"{node}:"))
    if linked:  # the node is right, the interface is not
        hint = f" ({node}'s linked interfaces: {', '.join(linked)})"
    else:
        hint = did_you_mean(end, ends) + " (`newtlab link show` lists the links)"
    raise RuntimeFailure(f"lab {plan.lab} has no link ending at {end!r}{hint}")


def _nics(plan: Plan, link: LinkPlan) -> list[tuple[NodePlan, str]]:
    """Each end's VM and the QEMU netdev of its NIC on this link."""
    nodes = [(plan.node(link.a_vm), link.a_nic), (plan.node(link.z_vm), link.z_nic)]
    return [(node, node.nics[nic].netdev_id) for node, nic in nodes]


async def _push(state: LabState, hosts: Hosts, link: LinkPlan, settings: LinkSettings) -> None:
    await hosts[link.worker_host].datapath.shape(state.name, link.a, settings)
    state.links[link.name] = settings
    save_state(state)


async def _carrier(state: LabState, hosts: Hosts, link: LinkPlan, up: bool) -> None:
    for node, netdev in _nics(state.plan, link):
        if state.nodes[node.name].status in ("running", "starting"):
            await hosts[node.host].engine.set_link(state.name, node.name, netdev, up)


async def impair(
    state: LabState, hosts: Hosts, end: str, values: dict[str, Any], direction: Direction
) -> LinkSettings:
    link, side = find_end(state.plan, end)
    settings = with_impairment(state.link_settings(link.name), side, direction, values)
    await _push(state, hosts, link, settings)
    return settings


async def reset(state: LabState, hosts: Hosts, end: str) -> LinkSettings:
    link, _ = find_end(state.plan, end)
    settings = without_impairment(state.link_settings(link.name))
    await _push(state, hosts, link, settings)
    return settings


async def cable(state: LabState, hosts: Hosts, end: str, up: bool) -> LinkSettings:
    """Pull the link's cable (``up=False``) or plug it back: bridge first when pulling
    (no frame crosses from then on), carriers first when plugging back."""
    link, _ = find_end(state.plan, end)
    settings = state.link_settings(link.name).model_copy(update={"down": not up})
    if up:
        await _carrier(state, hosts, link, up)
        await _push(state, hosts, link, settings)
    else:
        await _push(state, hosts, link, settings)
        await _carrier(state, hosts, link, up)
    return settings


async def cut_cables_of(state: LabState, host: Host, node: NodePlan) -> None:
    """After ``node``'s QEMU started: its NICs on pulled cables lose their carrier."""
    for link in state.plan.links:
        if not state.link_settings(link.name).down:
            continue
        for vm, netdev in _nics(state.plan, link):
            if vm.name == node.name:
                await host.engine.set_link(state.name, node.name, netdev, False)


PCAP_HEADER = 24
PCAP_RECORD = struct.Struct("<IIII")  # seconds, microseconds, captured length, length


class PcapSink:
    """Hands a capture's pcap stream on to ``write`` and counts the frames it held
    (it arrives in whole records, the file header first)."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write
        self.frames = 0
        self._header_seen = False

    def __call__(self, data: bytes) -> None:
        at = 0
        if not self._header_seen:
            at, self._header_seen = PCAP_HEADER, True
        while at < len(data):
            at += PCAP_RECORD.size + PCAP_RECORD.unpack_from(data, at)[2]
            self.frames += 1
        self.write(data)


async def capture(
    state: LabState,
    hosts: Hosts,
    end: str,
    sink: Callable[[bytes], None],
    count: int = 0,
    duration: float = 0,
) -> None:
    link, _ = find_end(state.plan, end)
    await hosts[link.worker_host].datapath.capture(state.name, link.a, sink, count, duration)
