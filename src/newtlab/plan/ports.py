"""TCP port allocation: SSH and console per device, two per link.

::

    link ports     link_port_base + 2*i (A side), + 1 (Z side)   i = link index
                   (a libvirt domain's NIC listens on its end's, on loopback; a link
                   between servers on the far end's, on its worker: QEMU's own VM
                   NICs listen on Unix sockets in the lab directory)
    console ports  console_port_base + d                         d = device index
                   (only with "console": "tcp"; else Unix sockets)
    SSH ports      ssh_port_base + d                             (sorted device names)

Each range must fit below 65536 and no two ranges may overlap: an overlap
would be a conflict at boot, so it is reported now with the fields to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError, SpecErrors
from ..spec.models import NewtlabSection
from .model import LOOPBACK, Plan


@dataclass(frozen=True)
class PortRange:
    field: str
    purpose: str
    first: int
    count: int

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def describe(self) -> str:
        return f"{self.purpose} {self.first}–{self.last}"


def link_ports(section: NewtlabSection, link_index: int) -> tuple[int, int]:
    first = section.link_port_base + 2 * link_index
    return first, first + 1


def device_ports(section: NewtlabSection, device_index: int) -> tuple[int, int]:
    """(SSH port, console port) of the device at ``device_index`` in name order."""
    return section.ssh_port_base + device_index, section.console_port_base + device_index


def check_ranges(section: NewtlabSection, devices: int, links: int, file: str) -> None:
    """Raise SpecErrors if any port range overflows or overlaps another."""
    ranges = [
        PortRange("newtlab.ssh_port_base", "SSH ports", section.ssh_port_base, devices),
        PortRange(
            "newtlab.console_port_base",
            "console ports",
            section.console_port_base,
            devices if section.console == "tcp" else 0,  # else Unix sockets
        ),
        PortRange("newtlab.link_port_base", "link ports", section.link_port_base, 2 * links),
    ]
    ranges = [r for r in ranges if r.count > 0]
    errors: list[SpecError] = []
    for r in ranges:
        if r.last > 65535 or r.first < 1024:
            errors.append(
                SpecError(
                    file,
                    r.field,
                    f"{r.describe()} fall outside 1024–65535",
                    "choose a base that leaves room for every node and link",
                )
            )
    for i, first in enumerate(ranges):
        for second in ranges[i + 1 :]:
            if first.first <= second.last and second.first <= first.last:
                errors.append(
                    SpecError(
                        file,
                        f"{first.field} / {second.field}",
                        f"{first.describe()} overlap {second.describe()}",
                        "move one base so the ranges are disjoint",
                    )
                )
    if errors:
        raise SpecErrors(errors)


@dataclass(frozen=True)
class PortUse:
    """One TCP port the lab will listen on, on one host, and why."""

    host: str
    bind: str
    port: int
    purpose: str
    node: str = ""  # the VM whose QEMU listens there ("" for a bridge's ports)


def collect_ports(plan: Plan) -> list[PortUse]:
    """Every port the plan listens on, per host: SSH, TCP consoles, libvirt domains' linked
    NICs, links between servers (QEMU's own VM NICs and the bridges' stats and control are
    Unix sockets)."""
    uses: list[PortUse] = []
    for node in plan.nodes:
        uses.append(PortUse(node.host, node.ssh_bind, node.ssh_port, f"{node.name} SSH", node.name))
        if node.console_port is not None:
            console = f"{node.name} console"
            uses.append(PortUse(node.host, LOOPBACK, node.console_port, console, node.name))
        for nic in node.nics:
            if node.engine == "libvirt" and nic.listen:  # a domain's NIC, for its bridge
                bind, _, port = nic.listen.rpartition(":")
                purpose = f"{node.name} {nic.guest} (link {nic.link})"
                uses.append(PortUse(node.host, bind, int(port), purpose, node.name))
    for bridge in plan.bridges.values():
        for link in bridge.links:
            for side in (link.a, link.z):
                if side.listen:
                    bind, _, port = side.listen.rpartition(":")
                    peers = ", ".join(side.allow)
                    purpose = f"link {link.a.name} -- {link.z.name}, far bridge only ({peers})"
                    uses.append(PortUse(bridge.host, bind, int(port), purpose))
    return sorted(uses, key=lambda u: (u.host, u.port))
