"""Where each NIC sits on the guest's PCI bus: explicit, so the plan knows what the guest sees.

Measured on QEMU 7.2 (``-machine pc``): slots 0–2 of bus 0 hold the host
bridge, the PIIX3 and VGA; devices without an address (the virtio disk,
``vm_extra_devices``) take the lowest free slots after every ``-device``.
NICs therefore take bus 0 from slot 3 on, leaving room for those; more NICs
go behind ``pci-bridge`` devices on the last slots of bus 0. The guest
numbers bridges' buses 1, 2, … in slot order and sees a NIC at slot S of
bridge k as ``0000:0k:SS.0``.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_SLOT = 3
LAST_SLOT = 31
BRIDGE_FIRST_SLOT = 1  # slot 0 of a pci-bridge is its hot-plug controller
PER_BRIDGE = LAST_SLOT - BRIDGE_FIRST_SLOT + 1


class PciError(ValueError):
    """More devices than the guest's PCI bus and bridges can hold; the message says how many."""


@dataclass(frozen=True)
class PciSlot:
    bus: int  # as the guest numbers it: 0, or the bridge's number
    slot: int

    @property
    def address(self) -> str:
        """The guest's name for it, as in /sys/bus/pci/devices: 0000:BB:SS.0."""
        return f"0000:{self.bus:02x}:{self.slot:02x}.0"

    @property
    def qemu_bus(self) -> str:
        return "pci.0" if self.bus == 0 else bridge_id(self.bus)


def bridge_id(bus: int) -> str:
    return f"pcib{bus}"


def parse(address: str) -> PciSlot:
    """The slot of a guest address ``0000:BB:SS.0``."""
    _, bus, slot_fn = address.split(":")
    return PciSlot(int(bus, 16), int(slot_fn.split(".")[0], 16))


def unaddressed_devices(disk_driver: str, extra_devices: list[str]) -> int:
    """Devices QEMU places itself: the disk's controller (none for IDE) and the extras."""
    return (0 if disk_driver == "ide" else 1) + len(extra_devices)


def most_nics(unaddressed: int) -> int:
    """The most NICs ``pci_layout`` places beside ``unaddressed`` other devices: bus 0's
    free slots but one, holding a bridge each, and a NIC on the one left."""
    room = LAST_SLOT - FIRST_SLOT + 1 - unaddressed
    return max(0, 1 + (room - 1) * PER_BRIDGE)


@dataclass(frozen=True)
class PciLayout:
    nics: list[PciSlot]  # by NIC index
    bridges: list[int]  # bus-0 slots of the pci-bridges: bridge k (bus k) is bridges[k - 1]


def pci_layout(nic_count: int, unaddressed: int) -> PciLayout:
    """Slots for ``nic_count`` NICs, leaving ``unaddressed`` free slots on bus 0 for the rest."""
    room = LAST_SLOT - FIRST_SLOT + 1 - unaddressed
    bridges = 0
    while nic_count > room - bridges + bridges * PER_BRIDGE:
        bridges += 1
        if bridges >= room:
            raise PciError(
                f"{nic_count} NICs and {unaddressed} other PCI devices do not fit on the "
                "guest's PCI bus"
            )
    on_bus0 = min(nic_count, room - bridges)
    slots = [PciSlot(0, FIRST_SLOT + i) for i in range(on_bus0)]
    bridge_slots = [LAST_SLOT - bridges + 1 + k for k in range(bridges)]  # ascending: bus order
    for i in range(nic_count - on_bus0):
        slots.append(PciSlot(1 + i // PER_BRIDGE, BRIDGE_FIRST_SLOT + i % PER_BRIDGE))
    return PciLayout(slots, bridge_slots)
