"""Domain XML rendered from node plans: as recorded in tests/golden/domains/ (rerun with
--update-golden when a change is intended, and read the diff), valid for libvirt 9.0's
schema, with every PCI device where the plan (and QEMU, for the argv) puts it."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from newtlab.lab import Lab
from newtlab.plan import pci
from newtlab.plan.domain_xml import DomainIdentity, domain_xml, free_slots
from newtlab.plan.model import NodePlan

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted((REPO / "examples").iterdir()) + [
    p / "specs" for p in sorted((REPO / "tests/fixtures/specs").iterdir())
]
GOLDEN = REPO / "tests" / "golden" / "domains"


def _spec_name(spec: Path) -> str:
    return spec.parent.name if spec.name == "specs" else spec.name


def _rendered(spec: Path) -> list[tuple[NodePlan, str]]:
    plan = Lab.load(spec, accel="tcg", engine="libvirt").plan
    return [(node, domain_xml(DomainIdentity("0123abcd", plan.lab, node.name, "0"), node, "tcg",
                              "/labs/x")) for node in plan.nodes]  # fmt: skip


@pytest.mark.parametrize("spec", SPECS, ids=_spec_name)
def test_each_domain_is_the_recorded_one(
    spec: Path, request: pytest.FixtureRequest, _isolated_home: Path
) -> None:
    for node, xml in _rendered(spec):
        text = xml.replace(str(Path.home()), "<home>")
        golden = GOLDEN / _spec_name(spec) / f"{node.name}.xml"
        if request.config.getoption("--update-golden"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
        assert golden.exists(), f"no {golden}: run with --update-golden"
        assert text == golden.read_text(), f"the domain of {node.name} changed: {golden}"


@pytest.mark.parametrize("spec", SPECS, ids=_spec_name)
def test_every_domain_passes_libvirts_schema(spec: Path, tmp_path: Path) -> None:
    validate = shutil.which("virt-xml-validate")
    assert validate, "virt-xml-validate missing: apt-get install libvirt-clients"
    for node, xml in _rendered(spec):
        path = tmp_path / f"{node.name}.xml"
        path.write_text(xml)
        checked = subprocess.run([validate, str(path), "domain"], capture_output=True, text=True)
        assert checked.returncode == 0, f"{spec.name}/{node.name}: {checked.stderr}"


@pytest.mark.parametrize("spec", SPECS, ids=_spec_name)
def test_pci_addresses_are_the_plans(spec: Path) -> None:
    for node, xml in _rendered(spec):
        root = ET.fromstring(xml)
        addresses = {
            pci.PciSlot(int(a.get("bus", "0"), 16), int(a.get("slot", "0"), 16))
            for a in root.iter("address") if a.get("type") == "pci"
        }  # fmt: skip
        passed = " ".join(a.get("value", "") for a in root.iter()
                          if a.tag.endswith("}arg"))  # fmt: skip
        linked = {pci.parse(nic.pci) for nic in node.nics if nic.index and nic.listen}
        assert linked <= addresses
        assert set(free_slots(node)) <= addresses
        assert {pci.PciSlot(0, s) for s in node.pci_bridges} <= addresses
        assert pci.PciSlot(0, 2) in addresses  # VGA, as under -machine pc
        mgmt = pci.parse(node.nics[0].pci)
        assert f"bus=pci.0,addr={mgmt.slot:#x}" in passed  # the management NIC, passed on
