"""Readiness probes, boot patches and post-boot commands from a spec dir, on real VMs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from labkit import SpecDir, run_cli, ssh, status, two_routers

from newtlab.state import load_state

pytestmark = pytest.mark.integration

BASE = {
    "description": "test patch: every step, in order",
    "pre_commands": ["echo pre >> /tmp/order", "echo keep > /etc/newtlab-disable-me"],
    "disable_files": ["/etc/newtlab-disable-me", "/etc/newtlab-not-there"],
    "files": [{"template": "pci.tmpl", "dest": "/tmp/{{ node }}/pci.txt"}],
    "post_commands": [
        "echo post >> /tmp/order",
        "{% if node == 'r2' %}echo broken on purpose >&2; false{% else %}true{% endif %}",
    ],
}
PCI_TEMPLATE = (
    "{% for a in pci_addrs %}{{ a }}\n{% endfor %}"
    "num_ports={{ num_ports }} release={{ release }} platform={{ platform }}\n"
)


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def _add_patches(spec: SpecDir) -> None:
    platforms_path = spec.path / "platforms.json"
    platforms = json.loads(platforms_path.read_text())
    platform = platforms["platforms"]["newtlab-host"]
    platform["vm_image_release"] = "2024"
    platform["vm_post_boot"] = ["echo postboot {{ node }} >> /tmp/order"]
    platform["vm_readiness"] = [  # what the bootstrap prints, then a data NIC that is up
        {"console": r"newtlab-net-up: eth0 \d+\.\d+"},
        {"command": "ip -o link show eth1", "match": "state UP", "timeout": 60},
    ]
    _write(platforms_path, platforms)
    r1 = spec.path / "profiles" / "r1.json"
    _write(r1, {**json.loads(r1.read_text()), "vm_post_boot": ["echo r1-only >> /tmp/order"]})
    patches = spec.path / "patches" / "newtlab-host"  # no dataplane: the platform's name
    _write(patches / "always" / "10-base.json", BASE)
    _write(patches / "always" / "pci.tmpl", PCI_TEMPLATE)
    _write(patches / "2024" / "20-release.json", {"pre_commands": ["echo 2024 >> /tmp/order"]})
    _write(patches / "2023" / "20-other.json", {"pre_commands": ["echo 2023 >> /tmp/order"]})


def _check_r1(planned_pci: list[str]) -> None:
    order = ssh("r1", "cat /tmp/order").split()
    assert order == ["pre", "post", "2024", "postboot", "r1", "r1-only"]
    assert ssh("r1", "ls /etc/newtlab-disable-me*").split() == ["/etc/newtlab-disable-me.disabled"]
    rendered = ssh("r1", "cat /tmp/r1/pci.txt").splitlines()
    assert rendered[:-1] == planned_pci
    assert rendered[-1] == "num_ports=1 release=2024 platform=newtlab-host"
    # The addresses are the ones the guest really sees on its data NICs.
    seen = ssh("r1", "basename $(readlink -f /sys/class/net/eth1/device/..)").strip()
    assert [seen] == planned_pci


def test_patches_post_boot_and_a_failing_node(make_lab, newtlab_home: Path) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab(edit=two_routers)  # r1 patched, r2 failing on purpose
    _add_patches(spec)
    planned = run_cli("plan", "-S", str(spec.path), "--no-probe")
    assert "10-base.json" in planned.stdout and "20-release.json" in planned.stdout
    assert "20-other.json" not in planned.stdout

    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", "--json")
    assert result.returncode != 0
    for probe in ("SSH login", "console shows /newtlab-net-up", "`ip -o link show eth1`"):
        assert f"r1: ready? {probe}" in result.stderr
    assert "r2: boot patch" in result.stderr and "10-base.json, post_commands" in result.stderr
    assert "broken on purpose" in result.stderr, result.stderr
    nodes = {n["name"]: n["status"] for n in status()["nodes"]}
    assert nodes == {"r1": "running", "r2": "error"}

    pci = [n.pci for n in load_state(spec.lab).plan.node("r1").nics[1:]]
    _check_r1(pci)
    # Every start runs it all again (the guest starts clean on each boot).
    assert run_cli("stop", "r1", "--grace", "0").returncode == 0
    assert run_cli("start", "r1").returncode == 0
    _check_r1(pci)
