"""Where each VM runs (server-pool placement) and where each link's bridge runs.

Both algorithms iterate in sorted order and break ties by name, so any
machine computing the plan gets the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import PlanError
from .model import HostPlan


def place_nodes(pins: Mapping[str, str], servers: list[HostPlan]) -> dict[str, str]:
    """Assign every node to a server: pinned nodes first, then spread the rest.

    ``pins`` maps node name → pinned server name (``""`` when unpinned).
    Unpinned nodes go, in name order, to the server with the fewest nodes
    (ties by server name) that has capacity; ``max_nodes == 0`` is unlimited.
    """
    by_name = {s.name: s for s in servers}
    count = dict.fromkeys(by_name, 0)

    def has_room(server: HostPlan) -> bool:
        return server.max_nodes == 0 or count[server.name] < server.max_nodes

    placed: dict[str, str] = {}
    for node in sorted(n for n, pin in pins.items() if pin):
        server = by_name.get(pins[node])
        if server is None:
            known = ", ".join(sorted(by_name))
            raise PlanError(
                f"node {node} is pinned to unknown server {pins[node]!r} (vm_host) — "
                f"servers are: {known}; fix vm_host or add the server to topology.json's "
                "newtlab.servers"
            )
        if not has_room(server):
            raise PlanError(
                f"server {server.name} is over capacity (max_nodes {server.max_nodes}) with "
                f"node {node} pinned to it — raise its max_nodes in topology.json's "
                "newtlab.servers, or pin fewer nodes there (vm_host in their profiles)"
            )
        count[server.name] += 1
        placed[node] = server.name
    for node in sorted(n for n, pin in pins.items() if not pin):
        for server in sorted(servers, key=lambda s: (count[s.name], s.name)):
            if has_room(server):
                count[server.name] += 1
                placed[node] = server.name
                break
        else:
            raise PlanError(
                f"no server capacity for node {node} — raise max_nodes or add servers "
                "(topology.json's newtlab.servers)"
            )
    return placed


def place_workers(endpoint_hosts: list[tuple[str, str]]) -> list[str]:
    """Bridge host of each link, given its (a-side host, z-side host), in link order.

    A link between VMs on one host is bridged there. A cross-host link goes
    to whichever of its two hosts has fewer cross-host bridges so far (ties:
    the smaller name), which keeps every host pair within one of balanced.
    """
    load: dict[str, int] = {}
    workers: list[str] = []
    for host_a, host_z in endpoint_hosts:
        if host_a == host_z:
            workers.append(host_a)
            continue
        count_a, count_z = load.get(host_a, 0), load.get(host_z, 0)
        if count_a != count_z:
            worker = host_a if count_a < count_z else host_z
        else:
            worker = min(host_a, host_z)
        load[worker] = load.get(worker, 0) + 1
        workers.append(worker)
    return workers
