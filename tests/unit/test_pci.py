"""PCI placement of NICs: what the guest will see, and the QEMU arguments that make it so."""

from __future__ import annotations

from pathlib import Path

import pytest

from newtlab.errors import PlanError
from newtlab.lab import Lab
from newtlab.plan.pci import PciError, parse, pci_layout
from specfactory import linked, write_specs


def test_nics_take_bus_0_from_slot_3() -> None:
    layout = pci_layout(4, unaddressed=2)
    assert [s.address for s in layout.nics] == [
        "0000:00:03.0", "0000:00:04.0", "0000:00:05.0", "0000:00:06.0",
    ]  # fmt: skip
    assert layout.bridges == []


def test_bus_0_is_filled_before_a_bridge_is_added() -> None:
    # Slots 3..31 are 29; two are left for the disk and one extra device.
    assert pci_layout(27, unaddressed=2).bridges == []
    layout = pci_layout(28, unaddressed=2)
    assert layout.bridges == [31]
    assert layout.nics[25].address == "0000:00:1c.0"  # slots 3..28 on bus 0 (26 NICs)
    assert [s.address for s in layout.nics[26:]] == ["0000:01:01.0", "0000:01:02.0"]


def test_many_nics_use_several_bridges_in_bus_order() -> None:
    layout = pci_layout(100, unaddressed=1)
    assert layout.bridges == [29, 30, 31]  # bus 1, 2, 3: ascending slots, as the guest numbers
    on_bus0 = [s for s in layout.nics if s.bus == 0]
    assert len(on_bus0) == 29 - 1 - 3
    assert layout.nics[-1].address == f"0000:03:{100 - 25 - 62:02x}.0"
    assert len({s.address for s in layout.nics}) == 100


def test_too_many_devices_are_refused() -> None:
    with pytest.raises(PciError, match="do not fit"):
        pci_layout(2000, unaddressed=2)


def test_parse_round_trips() -> None:
    for slot in pci_layout(70, unaddressed=2).nics:
        assert parse(slot.address) == slot


def test_plan_places_every_nic_and_the_argv_says_so(tmp_path: Path) -> None:
    devices = linked(("a:Ethernet29", "b:Ethernet0"))
    plan = Lab.load(write_specs(tmp_path / "lab", devices)).plan
    a = plan.node("a")
    assert len(a.nics) == 31 and a.pci_bridges == [31]  # disk (virtio) takes one slot
    argv = " ".join(a.qemu_argv)
    assert "-device pci-bridge,id=pcib1,chassis_nr=1,bus=pci.0,addr=0x1f" in argv
    assert argv.index("pci-bridge") < argv.index(f"mac={a.nics[30].mac}")
    assert a.nics[0].pci == "0000:00:03.0" and "bus=pci.0,addr=0x3" in argv
    last = a.nics[30]
    assert last.pci == "0000:01:04.0"  # 27 NICs fit on bus 0 beside the disk
    assert f"mac={last.mac},bus=pcib1,addr=0x4," in argv


def test_a_plan_that_cannot_fit_says_which_node(tmp_path: Path) -> None:
    devices = linked(("a:Ethernet5", "b:Ethernet0"))
    platforms = {"sw": {"vm_image": "/i.qcow2", "vm_interface_map": "sequential",
                        "vm_extra_devices": ["virtio-rng-pci"] * 28}}  # fmt: skip
    with pytest.raises(PlanError, match=r"^a: .* do not fit"):
        Lab.load(write_specs(tmp_path / "lab", devices, platforms=platforms))
