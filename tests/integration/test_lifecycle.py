"""A real 3-VM lab (examples/line3) through the real CLI: deploy, reach, operate, destroy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from labkit import SpecDir, ping, run_cli, ssh, status

import labprocs
from newtlab.agent import procs
from newtlab.agent.ports import port_in_use
from newtlab.state import load_state

pytestmark = pytest.mark.integration

ADDRESSES = {
    "r1": {"eth1": "10.0.12.1/24"},
    "r2": {"eth1": "10.0.12.2/24", "eth2": "10.0.23.2/24"},
    "r3": {"eth1": "10.0.23.3/24"},
}


def configure(node: str) -> None:
    for iface, address in ADDRESSES[node].items():
        ssh(node, f"ip addr add {address} dev {iface} && ip link set {iface} up")


def link_bytes(data: dict) -> list[int]:  # type: ignore[type-arg]
    return [link["stats"]["a_to_z_bytes"] + link["stats"]["z_to_a_bytes"] for link in data["links"]]


def test_line3_lifecycle(make_lab, newtlab_home: Path) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab()
    profiles_before = spec.profiles()

    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", "--json")
    assert result.returncode == 0, result.stderr
    deployed = json.loads(result.stdout)
    assert [n["status"] for n in deployed["nodes"]] == ["running"] * 3

    # Every node answers SSH with the lab's key, and each link carries traffic.
    for node in ADDRESSES:
        assert ssh(node, "hostname").strip() == node
        configure(node)
    before = link_bytes(status())
    ping("r1", "10.0.12.2")
    ping("r3", "10.0.23.2")
    data = status()
    assert all(n["status"] == "running" for n in data["nodes"])
    assert all(link["connected"] for link in data["links"])
    after = link_bytes(data)
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)

    # Profiles now point newtron at the VMs.
    r1 = json.loads((spec.path / "profiles" / "r1.json").read_text())
    assert r1["ssh_port"] == spec.ports["ssh_port_base"] and r1["mgmt_ip"] == "127.0.0.1"

    # Stop/start r2: its neighbours keep their QEMU and their NICs work again.
    state = load_state(spec.lab)
    neighbours = {n: state.nodes[n].pid for n in ("r1", "r3")}
    assert run_cli("stop", "r2", "--grace", "0").returncode == 0
    assert status()["nodes"][1]["status"] == "stopped"
    assert run_cli("start", "r2").returncode == 0
    configure("r2")
    ping("r1", "10.0.12.2")
    ping("r3", "10.0.23.2")
    state = load_state(spec.lab)
    assert {n: state.nodes[n].pid for n in ("r1", "r3")} == neighbours
    assert all(link["connected"] for link in status()["links"])

    # Destroy leaves nothing: no process, no port, no state, profiles restored.
    ports = [node["ssh_port"] for node in data["nodes"]] + [
        node["console_port"] for node in data["nodes"]
    ]
    ports += [p for link in data["links"] for p in (link["a_port"], link["z_port"])]
    result = run_cli("destroy", spec.lab)
    assert result.returncode == 0, result.stderr
    assert labprocs.vms(spec.lab) == {}
    assert procs.find(procs.bridge_tag(spec.lab)) == []
    assert [p for p in ports if port_in_use("127.0.0.1", p)] == []
    assert not (newtlab_home / "labs" / spec.lab).exists()
    assert spec.profiles() == profiles_before
