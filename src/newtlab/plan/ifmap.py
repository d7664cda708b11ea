"""Interface maps: which QEMU NIC carries which guest interface, both ways.

NIC 0 is always the management NIC; data NICs start at 1.

========== ======================== =====================================
map        interface → NIC          used by
========== ======================== =====================================
sequential EthernetN → N + 1        SONiC VPP, Cisco VS
stride-4   EthernetN → N / 4 + 1    SONiC VS (N a multiple of 4)
custom     explicit table           vendor images
linux      ethN → N                 Linux VMs (eth0 = management NIC)
========== ======================== =====================================
"""

from __future__ import annotations

import re

_ETHERNET = re.compile(r"Ethernet(0|[1-9][0-9]*)")
_LINUX = re.compile(r"eth(0|[1-9][0-9]*)")


class InterfaceMapError(ValueError):
    """An interface name the map cannot place on a NIC; the message says why."""


def _index(pattern: re.Pattern[str], name: str, example: str) -> int:
    m = pattern.fullmatch(name)
    if m is None:
        raise InterfaceMapError(f"{name!r} is not a valid name for this map (expected {example})")
    return int(m.group(1))


def nic_index(kind: str, interface: str, custom: dict[str, int] | None = None) -> int:
    """QEMU NIC index of a guest interface name."""
    if kind == "sequential":
        return _index(_ETHERNET, interface, "EthernetN") + 1
    if kind == "stride-4":
        n = _index(_ETHERNET, interface, "EthernetN with N a multiple of 4")
        if n % 4:
            raise InterfaceMapError(
                f"{interface!r} is not on a stride-4 NIC (N must be a multiple of 4)"
            )
        return n // 4 + 1
    if kind == "custom":
        table = custom or {}
        if interface not in table:
            raise InterfaceMapError(f"{interface!r} is not in vm_interface_map_custom")
        return table[interface]
    if kind == "linux":
        n = _index(_LINUX, interface, "ethN")
        if n == 0:
            raise InterfaceMapError("eth0 is the management NIC and cannot carry a link")
        return n
    raise InterfaceMapError(f"unknown interface map {kind!r}")


def interface_name(kind: str, index: int, custom: dict[str, int] | None = None) -> str:
    """Guest interface name of QEMU NIC ``index`` (``""`` if the map has none)."""
    if index == 0:
        return "eth0" if kind == "linux" else "mgmt"
    if kind == "sequential":
        return f"Ethernet{index - 1}"
    if kind == "stride-4":
        return f"Ethernet{(index - 1) * 4}"
    if kind == "linux":
        return f"eth{index}"
    if kind == "custom":
        for name, nic in (custom or {}).items():
            if nic == index:
                return name
        return ""
    raise InterfaceMapError(f"unknown interface map {kind!r}")
