"""Every kind of bad input ends in one clear message naming file, JSON path and fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from newtlab.errors import PlanError, SpecError
from newtlab.lab import Lab
from specfactory import linked, write_specs


def load_error(spec: Path) -> str:
    with pytest.raises((SpecError, PlanError)) as info:
        Lab.load(spec)
    return str(info.value)


def test_missing_directory(tmp_path: Path) -> None:
    assert "spec directory not found" in load_error(tmp_path / "nope")


@pytest.mark.parametrize("name", ["topology.json", "platforms.json"])
def test_missing_file(tmp_path: Path, name: str) -> None:
    spec = write_specs(tmp_path / "lab", {"a": {}})
    (spec / name).unlink()
    message = load_error(spec)
    assert str(spec / name) in message and "not found" in message


def test_bad_json_names_line_and_column(tmp_path: Path) -> None:
    spec = write_specs(tmp_path / "lab", {"a": {}})
    (spec / "topology.json").write_text('{\n  "devices": {,}\n}')
    message = load_error(spec)
    assert "topology.json: line 2, column 15: invalid JSON" in message


def test_wrong_type_names_json_path(tmp_path: Path) -> None:
    spec = write_specs(tmp_path / "lab", {"a": {}}, newtlab={"ssh_port_base": "many"})
    message = load_error(spec)
    assert "topology.json: newtlab.ssh_port_base:" in message
    assert "valid integer" in message


def test_top_level_not_an_object(tmp_path: Path) -> None:
    spec = write_specs(tmp_path / "lab", {"a": {}})
    (spec / "platforms.json").write_text("[1, 2]")
    assert "platforms.json: (top level): must be a JSON object" in load_error(spec)


def test_unknown_platform_lists_known_ones(tmp_path: Path) -> None:
    spec = write_specs(tmp_path / "lab", {"a": {}}, profiles={"a": {"platform": "vEOS"}})
    message = load_error(spec)
    assert "profiles/a.json: platform: unknown platform 'vEOS'" in message
    assert "host, sw" in message


def test_topology_level_platform_is_the_fallback(tmp_path: Path) -> None:
    spec = write_specs(tmp_path / "lab", {"a": {}}, profiles={"a": {"mgmt_ip": "1.2.3.4"}})
    message = load_error(spec)
    assert "names no platform" in message
    topo = json.loads((spec / "topology.json").read_text())
    topo["platform"] = "sw"
    (spec / "topology.json").write_text(json.dumps(topo))
    assert Lab.load(spec).plan.nodes[0].platform == "sw"


def test_device_without_profile(tmp_path: Path) -> None:
    spec = write_specs(tmp_path / "lab", {"a": {}, "b": {}})
    (spec / "profiles" / "b.json").unlink()
    message = load_error(spec)
    assert "profiles/b.json" in message and "device 'b' has no profile" in message


def test_link_to_unknown_device(tmp_path: Path) -> None:
    devices = {"a": {"interfaces": {"Ethernet0": {"link": "ghost:Ethernet0"}}}}
    message = load_error(write_specs(tmp_path / "lab", devices))
    assert "devices.a.interfaces.Ethernet0.link: link to unknown device 'ghost'" in message


def test_link_to_unknown_interface(tmp_path: Path) -> None:
    devices = linked(("a:Ethernet0", "b:Ethernet0"))
    devices["a"]["interfaces"]["Ethernet1"] = {"link": "b:Ethernet9"}
    message = load_error(write_specs(tmp_path / "lab", devices))
    assert "link to unknown interface 'Ethernet9' of 'b'" in message


def test_malformed_endpoint(tmp_path: Path) -> None:
    spec = write_specs(
        tmp_path / "lab", {"a": {}, "b": {}}, links=[{"a": "a-Ethernet0", "z": "b:Ethernet0"}]
    )
    assert (
        "links[0].a: 'a-Ethernet0' is not a link endpoint — write it as \"device:interface\""
        in load_error(spec)
    )


def test_interface_used_by_two_links(tmp_path: Path) -> None:
    links = [{"a": "a:Ethernet0", "z": "b:Ethernet0"}, {"a": "a:Ethernet0", "z": "c:Ethernet0"}]
    message = load_error(write_specs(tmp_path / "lab", {"a": {}, "b": {}, "c": {}}, links=links))
    assert "links[1].a: interface a:Ethernet0 is already used by links[0]" in message


def test_duplicate_link_declaration(tmp_path: Path) -> None:
    links = [{"a": "a:Ethernet0", "z": "b:Ethernet0"}, {"a": "b:Ethernet0", "z": "a:Ethernet0"}]
    message = load_error(write_specs(tmp_path / "lab", {"a": {}, "b": {}}, links=links))
    assert "already used by links[0]" in message


def test_one_sided_interface_link(tmp_path: Path) -> None:
    devices: dict[str, Any] = {
        "a": {"interfaces": {"Ethernet0": {"link": "b:Ethernet0"}}},
        "b": {"interfaces": {"Ethernet0": {}}},
    }
    message = load_error(write_specs(tmp_path / "lab", devices))
    assert "a:Ethernet0 links to b:Ethernet0, but b:Ethernet0 does not link back" in message
    assert 'add "link": "a:Ethernet0" to devices.b.interfaces.Ethernet0' in message


def test_conflicting_interface_links(tmp_path: Path) -> None:
    devices: dict[str, Any] = {
        "a": {"interfaces": {"Ethernet0": {"link": "b:Ethernet0"}}},
        "b": {"interfaces": {"Ethernet0": {"link": "c:Ethernet0"}}},
        "c": {"interfaces": {"Ethernet0": {"link": "b:Ethernet0"}}},
    }
    message = load_error(write_specs(tmp_path / "lab", devices))
    assert "a:Ethernet0 links to b:Ethernet0, but b:Ethernet0 links to c:Ethernet0" in message


def test_links_list_must_agree_with_interface_fields(tmp_path: Path) -> None:
    devices = linked(("a:Ethernet0", "b:Ethernet0"))
    devices["c"] = {}
    links = [{"a": "a:Ethernet0", "z": "c:Ethernet0"}]
    message = load_error(write_specs(tmp_path / "lab", devices, links=links))
    assert "says a:Ethernet0 links to b:Ethernet0, but links[0] links it to c:Ethernet0" in message
    assert "b:Ethernet0 links to a:Ethernet0, but the links list has no such link" in message


def test_link_to_itself(tmp_path: Path) -> None:
    links = [{"a": "a:Ethernet0", "z": "a:Ethernet0"}]
    assert "linked to itself" in load_error(write_specs(tmp_path / "lab", {"a": {}}, links=links))


@pytest.mark.parametrize("bad", ["a b", "../x", "x;rm", "-x", "a$b", ""])
def test_unsafe_device_names(tmp_path: Path, bad: str) -> None:
    spec = tmp_path / "lab"
    write_specs(spec, {"ok": {}})
    topo = {"devices": {bad: {}}}
    (spec / "topology.json").write_text(json.dumps(topo))
    message = load_error(spec)
    assert f"device name {bad!r} is not allowed" in message


def test_unsafe_lab_name(tmp_path: Path) -> None:
    spec = write_specs(tmp_path / "my lab", {"a": {}})
    assert "lab name 'my lab' is not allowed" in load_error(spec)


def test_port_bases_that_overlap(tmp_path: Path) -> None:
    newtlab = {"ssh_port_base": 30001, "console": "tcp"}
    spec = write_specs(tmp_path / "lab", {"a": {}, "b": {}}, newtlab=newtlab)
    message = load_error(spec)
    assert "newtlab.ssh_port_base / newtlab.console_port_base" in message
    assert "SSH ports 30001–30002 overlap console ports 30000–30001" in message


def test_link_ports_overlapping_stats_and_ssh(tmp_path: Path) -> None:
    devices = linked(("a:Ethernet0", "b:Ethernet0"), ("a:Ethernet1", "b:Ethernet1"))
    spec = write_specs(
        tmp_path / "lab", devices, newtlab={"link_port_base": 39999, "ssh_port_base": 40001}
    )
    message = load_error(spec)
    assert "SSH ports 40001–40002 overlap link ports 39999–40002" in message


def test_port_range_past_65535(tmp_path: Path) -> None:
    spec = write_specs(tmp_path / "lab", {"a": {}, "b": {}}, newtlab={"ssh_port_base": 65535})
    assert "SSH ports 65535–65536 fall outside 1024–65535" in load_error(spec)


def test_interface_name_the_map_cannot_place(tmp_path: Path) -> None:
    devices = linked(("a:Ethernet2", "b:Ethernet0"))
    platforms = {"sw": {"vm_image": "/i.qcow2", "vm_interface_map": "stride-4"}}
    message = load_error(write_specs(tmp_path / "lab", devices, platforms=platforms))
    assert "devices.a.interfaces.Ethernet2: cannot place a:Ethernet2 on a NIC" in message
    assert "stride-4" in message


def test_linked_eth0_outside_host_vms(tmp_path: Path) -> None:
    devices = linked(("a:eth0", "b:eth1"))
    platforms = {"sw": {"vm_image": "/i.qcow2", "vm_interface_map": "linux"}}
    message = load_error(write_specs(tmp_path / "lab", devices, platforms=platforms))
    assert "eth0 is the management NIC" in message


def test_custom_map_without_table(tmp_path: Path) -> None:
    platforms = {"sw": {"vm_image": "/i.qcow2", "vm_interface_map": "custom"}}
    message = load_error(write_specs(tmp_path / "lab", {"a": {}}, platforms=platforms))
    assert "platforms.sw.vm_interface_map_custom" in message


def test_custom_map_with_duplicate_nic(tmp_path: Path) -> None:
    platforms = {
        "sw": {
            "vm_image": "/i.qcow2",
            "vm_interface_map": "custom",
            "vm_interface_map_custom": {"Gi1": 1, "Gi2": 1},
        }
    }
    message = load_error(write_specs(tmp_path / "lab", {"a": {}}, platforms=platforms))
    assert "platforms.sw.vm_interface_map_custom" in message and "both map to NIC 1" in message


def test_no_image_anywhere(tmp_path: Path) -> None:
    platforms = {"sw": {"vm_interface_map": "sequential"}}
    message = load_error(write_specs(tmp_path / "lab", {"a": {}}, platforms=platforms))
    assert "profiles/a.json: vm_image: no vm_image for device 'a'" in message


@pytest.mark.parametrize(
    ("platform", "said"),
    [
        ({"vm_initrd": "/i.gz"}, '"vm_initrd" and "vm_kernel_cmdline" need "vm_kernel"'),
        ({"vm_kernel_cmdline": "quiet"}, '"vm_initrd" and "vm_kernel_cmdline" need "vm_kernel"'),
        ({"vm_kernel": "/k", "vm_firmware": "uefi"}, '"vm_kernel" boots with the BIOS firmware'),
    ],
)
def test_a_direct_boot_needs_its_kernel_and_the_bios(
    tmp_path: Path, platform: dict[str, str], said: str
) -> None:
    platforms = {"sw": {"vm_image": "/i.qcow2", "vm_interface_map": "sequential", **platform}}
    message = load_error(write_specs(tmp_path / "lab", {"a": {}}, platforms=platforms))
    assert "platforms.json" in message and said in message


def test_unknown_interface_map_value(tmp_path: Path) -> None:
    platforms = {"sw": {"vm_image": "/i.qcow2", "vm_interface_map": "zigzag"}}
    message = load_error(write_specs(tmp_path / "lab", {"a": {}}, platforms=platforms))
    assert "platforms.sw.vm_interface_map" in message and "'sequential'" in message


def test_pin_without_server_pool(tmp_path: Path) -> None:
    spec = write_specs(
        tmp_path / "lab", {"a": {}}, profiles={"a": {"platform": "sw", "vm_host": "s1"}}
    )
    assert "pinned to server 's1' (vm_host) but topology.json has no newtlab.servers" in load_error(
        spec
    )


def test_several_errors_are_reported_together(tmp_path: Path) -> None:
    spec = write_specs(
        tmp_path / "lab",
        {"a": {}, "b": {}},
        profiles={"a": {"platform": "x"}, "b": {"platform": "y"}},
    )
    message = load_error(spec)
    assert "unknown platform 'x'" in message and "unknown platform 'y'" in message


def test_reserved_hostvm_name(tmp_path: Path) -> None:
    assert "reserved for host VMs" in load_error(write_specs(tmp_path / "lab", {"hostvm-0": {}}))
