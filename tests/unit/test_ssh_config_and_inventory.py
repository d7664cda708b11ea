"""ssh-config and inventory of a lab's state: every node and virtual host, as each tool
expects it (they are run against a real lab in tests/integration/test_export.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from newtlab.export.inventory import ansible_inventory, entries
from newtlab.export.ssh_config import ssh_config
from newtlab.lab import Lab
from newtlab.state import LabState
from specfactory import write_specs

ROOT = Path(__file__).parents[2]


def _state(spec: Path, name: str) -> LabState:
    plan = Lab.load(spec, name=name).plan
    return LabState(name=name, created=datetime.now(UTC), spec_dir=str(spec), plan=plan,
                    ssh_key_path="/keys/id lab")  # fmt: skip


def _hosts(config: str) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in config.splitlines():
        if line.startswith("Host "):
            current = found.setdefault(line.split()[1], {})
        elif line.startswith("    "):
            key, _, value = line.strip().partition(" ")
            current[key] = value
    return found


def test_ssh_config_has_every_node_and_virtual_host() -> None:
    state = _state(ROOT / "examples" / "hosts2", "hosts2")
    hosts = _hosts(ssh_config(state))
    assert sorted(hosts) == ["host1", "host2", "r1"]
    vm = state.plan.node("hostvm-0")
    r1 = state.plan.node("r1")
    assert hosts["host1"]["User"] == "host1" and hosts["host1"]["Port"] == str(vm.ssh_port)
    assert hosts["r1"]["User"] == r1.ssh_user and hosts["r1"]["Port"] == str(r1.ssh_port)
    assert hosts["r1"]["HostName"] == "127.0.0.1"
    assert hosts["r1"]["IdentityFile"] == '"/keys/id lab"'  # a path with a space stays whole
    assert hosts["r1"]["StrictHostKeyChecking"] == "no"
    assert sorted(_hosts(ssh_config(state, "lab1-"))) == ["lab1-host1", "lab1-host2", "lab1-r1"]


def test_inventory_groups_by_device_type_and_server_with_network_os(tmp_path: Path) -> None:
    platforms = {
        "vs": {"base": "sonic-vs", "vm_image": "/images/sonic.qcow2"},
        "linux": {"base": "newtlab-host"},
    }
    spec = write_specs(
        tmp_path / "mixed",
        {"sw1": {"interfaces": {"Ethernet0": {"link": "r1:eth1"}}},
         "r1": {"interfaces": {"eth1": {"link": "sw1:Ethernet0"}}}},
        platforms=platforms,
        profiles={"sw1": {"platform": "vs", "vm_host": "s2"}, "r1": {"platform": "linux"}},
        newtlab={"servers": [{"name": "s1", "address": "10.9.0.1"},
                             {"name": "s2", "address": "10.9.0.2"}]},
    )  # fmt: skip
    state = _state(spec, "mixed")
    inventory = ansible_inventory(state)
    groups = inventory["all"]["children"]
    assert set(groups) == {"switch", "router", "server_s1", "server_s2"}
    sw1 = groups["switch"]["hosts"]["sw1"]
    assert sw1["ansible_network_os"] == "dellemc.enterprise_sonic.sonic"
    assert sw1["ansible_connection"] == "ansible.netcommon.network_cli"
    assert sw1["ansible_host"] == "10.9.0.2" and sw1["ansible_password"]
    r1 = groups["router"]["hosts"]["r1"]
    assert r1["ansible_connection"] == "ssh" and "ansible_password" not in r1
    assert r1["ansible_ssh_private_key_file"] == "/keys/id lab"
    assert groups["server_s2"]["hosts"] == {"sw1": {}}
    rows = {row["name"]: row for row in entries(state)}
    assert rows["sw1"]["server"] == "s2" and rows["sw1"]["port"] == state.plan.node("sw1").ssh_port
