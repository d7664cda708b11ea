"""Virtual hosts: each host's interfaces inside its host VM, and their addresses.

A host's ``ethN`` is NIC base + N of its host VM (see ``nodes``). Its
addresses come from its profile (``host_ip``, ``host_gateway``) or are
derived from the ``ip`` that topology.json gives the link's other end:

- ``/31``: the other address of the pair;
- ``/30``: the other usable address;
- wider: network address + 10 × (i + 1), i = the host's index in its VM.

The default route goes via ``host_gateway``, else via the peer of the
host's lowest-numbered interface that has one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from ..errors import SpecError, SpecErrors
from ..spec.links import Endpoint
from ..spec.load import Specs
from .model import HostInterfacePlan, NicPlan, VirtualHostPlan

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
DERIVED_STEP = 10  # host i of a VM takes network + 10 × (i + 1) on a wide subnet


class AddressError(ValueError):
    """A peer address no host address can be derived from; the message says why."""


def derive_address(peer: str, index: int) -> str:
    """The address (CIDR) of host ``index`` on a link whose other end has ``peer`` (CIDR)."""
    try:
        iface: IPInterface = ipaddress.ip_interface(peer)
    except ValueError:
        raise AddressError(f"{peer!r} is not an address with a prefix, like 10.1.0.0/31") from None
    net = iface.network
    spare = net.max_prefixlen - net.prefixlen
    if "/" not in peer or spare == 0:
        raise AddressError(
            f"{peer} leaves no address for the host (give it a prefix of /31 or wider)"
        )
    if spare == 1:  # a point-to-point pair
        other = net.network_address + (1 - int(iface.ip) % 2)
    elif spare == 2:  # /30: two usable addresses
        usable = (net.network_address + 1, net.network_address + 2)
        if iface.ip not in usable:
            raise AddressError(f"{peer} is not a usable address of its /{net.prefixlen}")
        other = usable[1] if iface.ip == usable[0] else usable[0]
    else:
        other = net.network_address + DERIVED_STEP * (index + 1)
        if other not in net or other == net.broadcast_address:
            raise AddressError(
                f"host number {index + 1} of its VM would take {other}, outside {net}"
            )
        if other == iface.ip:
            raise AddressError(
                f"host number {index + 1} of its VM would take {other}, the peer's own"
            )
    return f"{other}/{net.prefixlen}"


def _peers(specs: Specs) -> dict[Endpoint, Endpoint]:
    peers = {}
    for link in specs.links:
        peers[link.a], peers[link.z] = link.z, link.a
    return peers


def _ip_of(specs: Specs, end: Endpoint) -> str:
    device = specs.topology.devices.get(end.device)
    iface = device.interfaces.get(end.interface) if device else None
    return (iface.ip or "") if iface else ""


class _HostBuilder:
    """Works out one host's interfaces, collecting every problem found."""

    def __init__(self, specs: Specs, peers: dict[Endpoint, Endpoint], errors: list[SpecError]):
        self.specs = specs
        self.peers = peers
        self.errors = errors
        self.topology = str(specs.directory / "topology.json")

    def _profile_error(self, host: str, field: str, problem: str, fix: str) -> None:
        path = str(self.specs.profiles[host].path)
        self.errors.append(SpecError(path, field, problem, fix))

    def _manual(self, host: str) -> tuple[IPInterface | None, str]:
        """The profile's host_ip and host_gateway, checked."""
        profile = self.specs.profiles[host].profile
        address: IPInterface | None = None
        if profile.host_ip:
            try:
                if "/" not in profile.host_ip:
                    raise ValueError
                address = ipaddress.ip_interface(profile.host_ip)
            except ValueError:
                self._profile_error(
                    host,
                    "host_ip",
                    f"{profile.host_ip!r} is not an address with a prefix",
                    'write it as CIDR, e.g. "10.1.100.10/24"',
                )
        gateway = ""
        if profile.host_gateway:
            try:
                gateway = str(ipaddress.ip_address(profile.host_gateway))
            except ValueError:
                self._profile_error(
                    host,
                    "host_gateway",
                    f"{profile.host_gateway!r} is not an IP address",
                    'write it as an address, e.g. "10.1.100.1"',
                )
        return address, gateway

    def _interface(
        self, host: str, index: int, nic: NicPlan, manual: IPInterface | None
    ) -> HostInterfacePlan:
        peer_end = self.peers.get(Endpoint(host, nic.interface))
        peer_ip = _ip_of(self.specs, peer_end) if peer_end else ""
        address = ""
        if manual is not None:
            address = str(manual)
        elif peer_ip and peer_end:
            try:
                address = derive_address(peer_ip, index)
            except AddressError as exc:
                self.errors.append(
                    SpecError(
                        self.topology,
                        f"devices.{peer_end.device}.interfaces.{peer_end.interface}.ip",
                        f"cannot derive {host}:{nic.interface}'s address: {exc}",
                        f'change this address, or set "host_ip" in profiles/{host}.json',
                    )
                )
        peer = ""
        if peer_ip and address and peer_end:
            try:
                far = ipaddress.ip_interface(peer_ip)
            except ValueError:  # host_ip is given, so nothing was derived from it
                self.errors.append(
                    SpecError(
                        self.topology,
                        f"devices.{peer_end.device}.interfaces.{peer_end.interface}.ip",
                        f"{peer_ip!r} is not an address with a prefix",
                        'write it as CIDR, e.g. "10.1.0.0/31"',
                    )
                )
                far = None
            near = ipaddress.ip_interface(address)
            if far is not None and far.ip in near.network and far.ip != near.ip:
                peer = str(far.ip)  # a gateway candidate only if it is on the host's subnet
        return HostInterfacePlan(
            name=nic.interface, nic=nic.index, mac=nic.mac, address=address, peer=peer
        )

    def build(self, host: str, vm: str, index: int, nics: Sequence[NicPlan]) -> VirtualHostPlan:
        manual, gateway = self._manual(host)
        own = sorted((n for n in nics if n.device == host), key=lambda n: int(n.interface[3:]))
        linked = [n for n in own if n.link]
        if manual is not None and not linked:
            self._profile_error(
                host,
                "host_ip",
                f"{host} has no link to carry host_ip {manual}",
                f"link one of {host}'s interfaces in topology.json, or remove host_ip",
            )
        carrier = linked[0] if linked else None
        interfaces = [
            self._interface(host, index, nic, manual if nic is carrier else None) for nic in own
        ]
        if gateway:
            subnets = [ipaddress.ip_interface(i.address).network for i in interfaces if i.address]
            if not any(ipaddress.ip_address(gateway) in net for net in subnets):
                on = ", ".join(str(s) for s in subnets) or "none"
                self._profile_error(
                    host,
                    "host_gateway",
                    f"gateway {gateway} is on none of {host}'s subnets ({on})",
                    "use an address of a subnet the host is on, or set host_ip",
                )
        else:
            gateway = next((i.peer for i in interfaces if i.peer), "")
        return VirtualHostPlan(
            name=host, vm=vm, index=index, interfaces=interfaces, gateway=gateway
        )


def plan_vhosts(
    specs: Specs, vm: str, hosts: Sequence[str], nics: Sequence[NicPlan]
) -> list[VirtualHostPlan]:
    """The virtual hosts of host VM ``vm``, in order; every problem raised at once."""
    if not hosts:
        return []
    errors: list[SpecError] = []
    builder = _HostBuilder(specs, _peers(specs), errors)
    planned = [builder.build(host, vm, i, nics) for i, host in enumerate(hosts)]
    if errors:
        raise SpecErrors(errors)
    return planned
