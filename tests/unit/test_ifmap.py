"""Interface maps against worked examples (docs/specs.md), both directions."""

from __future__ import annotations

import pytest

from newtlab.plan.ifmap import InterfaceMapError, interface_name, nic_index


@pytest.mark.parametrize(
    ("kind", "name", "index"),
    [
        ("stride-4", "Ethernet0", 1),
        ("stride-4", "Ethernet4", 2),
        ("stride-4", "Ethernet8", 3),
        ("stride-4", "Ethernet12", 4),
        ("sequential", "Ethernet0", 1),
        ("sequential", "Ethernet1", 2),
        ("sequential", "Ethernet31", 32),
        ("linux", "eth1", 1),
        ("linux", "eth7", 7),
    ],
)
def test_maps_round_trip(kind: str, name: str, index: int) -> None:
    assert nic_index(kind, name) == index
    assert interface_name(kind, index) == name


def test_custom_map_both_directions() -> None:
    table = {"Ethernet0": 3, "GigabitEthernet0/0/0/1": 1}
    assert nic_index("custom", "Ethernet0", table) == 3
    assert interface_name("custom", 3, table) == "Ethernet0"
    assert nic_index("custom", "GigabitEthernet0/0/0/1", table) == 1
    assert interface_name("custom", 2, table) == ""
    with pytest.raises(InterfaceMapError, match="not in vm_interface_map_custom"):
        nic_index("custom", "Ethernet4", table)


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("stride-4", "Ethernet2", "multiple of 4"),
        ("stride-4", "eth1", "not a valid name"),
        ("sequential", "Ethernet01", "not a valid name"),
        ("sequential", "Ethernet", "not a valid name"),
        ("linux", "eth0", "management NIC"),
        ("linux", "Ethernet0", "not a valid name"),
        ("bogus", "Ethernet0", "unknown interface map"),
    ],
)
def test_invalid_names_are_refused_with_reason(kind: str, name: str, message: str) -> None:
    with pytest.raises(InterfaceMapError, match=message):
        nic_index(kind, name)


def test_nic_zero_is_management() -> None:
    assert interface_name("sequential", 0) == "mgmt"
    assert interface_name("linux", 0) == "eth0"
