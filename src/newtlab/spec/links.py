"""The topology's links: taken from ``links`` or derived from interface ``link`` fields.

Both forms must describe the same wiring: every declared ``link`` field must
point back at its peer, and a ``links`` list must agree with any interface
that names its peer. The result is sorted (never dict or hash order) so the
same files always give the same port numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError, SpecErrors
from .models import TopologyFile
from .names import is_interface_name, split_endpoint


@dataclass(frozen=True)
class Endpoint:
    device: str
    interface: str

    def __str__(self) -> str:
        return f"{self.device}:{self.interface}"

    def sort_key(self) -> tuple[str, str]:
        return (self.device, self.interface)


@dataclass(frozen=True)
class Link:
    a: Endpoint
    z: Endpoint

    def __str__(self) -> str:
        return f"{self.a} -- {self.z}"

    def sort_key(self) -> tuple[str, str, str, str]:
        return (*self.a.sort_key(), *self.z.sort_key())


class _Collector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[SpecError] = []

    def add(self, path: str, problem: str, fix: str) -> None:
        self.errors.append(SpecError(self.file, path, problem, fix))


def _parse(text: str, path: str, topology: TopologyFile, errs: _Collector) -> Endpoint | None:
    parts = split_endpoint(text)
    if parts is None:
        errs.add(path, f"{text!r} is not a link endpoint", 'write it as "device:interface"')
        return None
    device, iface = parts
    if not is_interface_name(iface):
        errs.add(
            path,
            f"interface name {iface!r} is not allowed",
            "use letters, digits, '_', '.', '/' and '-' (64 at most)",
        )
        return None
    dev = topology.devices.get(device)
    if dev is None:
        known = ", ".join(sorted(topology.devices)) or "none"
        errs.add(path, f"link to unknown device {device!r}", f"devices are: {known}")
        return None
    if dev.interfaces and iface not in dev.interfaces:
        errs.add(
            path,
            f"link to unknown interface {iface!r} of {device!r}",
            f"declare it under devices.{device}.interfaces or fix the name",
        )
        return None
    return Endpoint(device, iface)


def _declared_peers(
    topology: TopologyFile, errs: _Collector
) -> dict[Endpoint, tuple[Endpoint, str]]:
    """Every interface ``link`` field: endpoint → (peer, JSON path of the field)."""
    peers: dict[Endpoint, tuple[Endpoint, str]] = {}
    for device in sorted(topology.devices):
        ifaces = topology.devices[device].interfaces
        for iface in sorted(ifaces):
            target = ifaces[iface].link
            if target is None:
                continue
            path = f"devices.{device}.interfaces.{iface}.link"
            peer = _parse(target, path, topology, errs)
            if peer is None:
                continue
            here = Endpoint(device, iface)
            if peer == here:
                errs.add(path, "an interface cannot link to itself", "name the peer interface")
                continue
            peers[here] = (peer, path)
    return peers


def _from_list(
    topology: TopologyFile,
    declared: dict[Endpoint, tuple[Endpoint, str]],
    errs: _Collector,
) -> list[Link]:
    assert topology.links is not None
    links: list[Link] = []
    used: dict[Endpoint, str] = {}
    for i, entry in enumerate(topology.links):
        a = _parse(entry.a, f"links[{i}].a", topology, errs)
        z = _parse(entry.z, f"links[{i}].z", topology, errs)
        if a is None or z is None:
            continue
        if a == z:
            errs.add(f"links[{i}]", f"{a} is linked to itself", "name two different interfaces")
            continue
        clash = False
        for end, side in ((a, "a"), (z, "z")):
            if end in used:
                errs.add(
                    f"links[{i}].{side}",
                    f"interface {end} is already used by {used[end]}",
                    "each interface can carry one link: remove the duplicate or pick "
                    "another interface",
                )
                clash = True
        if clash:
            continue
        used[a] = used[z] = f"links[{i}]"
        for end, other in ((a, z), (z, a)):
            declared_peer = declared.get(end)
            if declared_peer is not None and declared_peer[0] != other:
                errs.add(
                    declared_peer[1],
                    f"says {end} links to {declared_peer[0]}, but links[{i}] links it to {other}",
                    "make the interface's link field and the links list agree",
                )
        links.append(Link(a, z))
    for end, (peer, path) in declared.items():
        if end not in used:
            errs.add(
                path,
                f"{end} links to {peer}, but the links list has no such link",
                f'add {{"a": "{end}", "z": "{peer}"}} to links or remove the link field',
            )
    return links


def _from_interfaces(
    declared: dict[Endpoint, tuple[Endpoint, str]], errs: _Collector
) -> list[Link]:
    links: set[Link] = set()
    for end, (peer, path) in declared.items():
        back = declared.get(peer)
        if back is None:
            errs.add(
                path,
                f"{end} links to {peer}, but {peer} does not link back",
                f'add "link": "{end}" to devices.{peer.device}.interfaces.{peer.interface}',
            )
            continue
        if back[0] != end:
            errs.add(
                path,
                f"{end} links to {peer}, but {peer} links to {back[0]}",
                "an interface can carry one link: make both ends name each other",
            )
            continue
        a, z = sorted((end, peer), key=Endpoint.sort_key)
        links.add(Link(a, z))
    return list(links)


def resolve_links(topology: TopologyFile, file: str) -> list[Link]:
    """Validated links of a topology, sorted by (a, z). Raises SpecErrors."""
    errs = _Collector(file)
    declared = _declared_peers(topology, errs)
    if topology.links is not None:
        links = _from_list(topology, declared, errs)
    else:
        links = _from_interfaces(declared, errs)
    if errs.errors:
        raise SpecErrors(errs.errors)
    return sorted(links, key=Link.sort_key)
