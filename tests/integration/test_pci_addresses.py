"""The guest sees each NIC at the PCI address the plan gives it, behind a pci-bridge too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from labkit import SpecDir, ping, run_cli, ssh

from newtlab.state import load_state

pytestmark = pytest.mark.integration

LISTING = (
    'for d in /sys/class/net/eth*; do echo "$(cat "$d/address") $(readlink -f "$d/device")"; done'
)


def _wire_r1_on_eth30(topology: dict[str, Any]) -> None:
    # r1's link moves to eth30: 31 NICs, more than bus 0 holds beside the disk and the rng.
    devices = topology["devices"]
    devices["r1"]["interfaces"] = {"eth30": {"link": "r2:eth1"}}
    devices["r2"]["interfaces"]["eth1"]["link"] = "r1:eth30"


def _guest_addresses(node: str) -> dict[str, str]:
    """MAC → the PCI address of the NIC (a virtio NIC's device is a child of it)."""
    found = {}
    for line in ssh(node, LISTING).splitlines():
        mac, path = line.split()
        found[mac] = next(p for p in reversed(path.split("/")) if p.startswith("0000:"))
    return found


def test_guest_sees_planned_pci_addresses(make_lab, newtlab_home: Path) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab(edit=_wire_r1_on_eth30)
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", "--json")
    assert result.returncode == 0, result.stderr
    plan = load_state(spec.lab).plan
    r1 = plan.node("r1")
    assert r1.pci_bridges and r1.nics[30].pci.startswith("0000:01:")
    for node in ("r1", "r2"):
        planned = {nic.mac: nic.pci for nic in plan.node(node).nics}
        assert _guest_addresses(node) == planned
    # The NIC behind the bridge carries traffic.
    ssh("r1", "ip addr add 10.0.12.1/24 dev eth30")
    ssh("r2", "ip addr add 10.0.12.2/24 dev eth1")
    ping("r1", "10.0.12.2")
