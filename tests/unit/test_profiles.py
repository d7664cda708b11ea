"""Profile patching on deploy and exact restoration on destroy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from newtlab.lab import Lab
from newtlab.profiles import patch_profiles, restore_profiles
from specfactory import FIXTURES


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    target = tmp_path / "2node-ngdp" / "specs"
    shutil.copytree(FIXTURES / "2node-ngdp" / "specs", target)
    return target


def snapshot(spec: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((spec / "profiles").iterdir())}


def test_patch_then_restore_is_byte_exact(spec: Path, tmp_path: Path) -> None:
    before = snapshot(spec)
    plan = Lab.load(spec).plan
    lab_dir = tmp_path / "state"
    lab_dir.mkdir()
    records = patch_profiles(plan, lab_dir)
    switch1 = json.loads((spec / "profiles" / "switch1.json").read_text())
    node = plan.node("switch1")
    assert (switch1["ssh_port"], switch1["mac"]) == (node.ssh_port, node.mac)
    assert "console_port" not in switch1  # a Unix socket: no TCP port to name
    assert switch1["mgmt_ip"] == "127.0.0.1" and switch1["evpn"] == {"peers": ["switch2"]}
    host3 = json.loads((spec / "profiles" / "host3.json").read_text())
    hostvm = plan.node("hostvm-0")
    assert host3["ssh_port"] == hostvm.ssh_port
    # Its MAC is its own NIC's (eth0 in its namespace), not the host VM's management NIC's.
    (vhost,) = [v for v in hostvm.vhosts if v.name == "host3"]
    assert host3["mac"] == vhost.interfaces[0].mac != hostvm.mac
    assert {r.device for r in records} == {p.removesuffix(".json") for p in before}
    assert restore_profiles(plan, records, lab_dir) == []
    assert snapshot(spec) == before
    # A destroy retried (a server was down the first time) leaves them exactly so.
    assert restore_profiles(plan, records, lab_dir) == []
    assert snapshot(spec) == before


def test_credentials_added_only_when_missing(spec: Path, tmp_path: Path) -> None:
    path = spec / "profiles" / "switch2.json"
    profile = json.loads(path.read_text())
    del profile["ssh_user"], profile["ssh_pass"]
    path.write_text(json.dumps(profile))
    plan = Lab.load(spec).plan
    (tmp_path / "s").mkdir()
    records = patch_profiles(plan, tmp_path / "s")
    patched = json.loads(path.read_text())
    assert (patched["ssh_user"], patched["ssh_pass"]) == ("aldrin", "YourPaSsWoRd")
    assert next(r for r in records if r.device == "switch2").added_credentials


def test_edited_profile_keeps_the_edit(spec: Path, tmp_path: Path) -> None:
    plan = Lab.load(spec).plan
    (tmp_path / "s").mkdir()
    records = patch_profiles(plan, tmp_path / "s")
    path = spec / "profiles" / "switch1.json"
    edited = json.loads(path.read_text())
    edited["underlay_asn"] = 65099
    path.write_text(json.dumps(edited, indent=4))
    warnings = restore_profiles(plan, records, tmp_path / "s")
    assert len(warnings) == 1 and "kept your changes" in warnings[0]
    restored = json.loads(path.read_text())
    assert restored["underlay_asn"] == 65099
    assert (
        "ssh_port" not in restored and "mac" not in restored and restored["mgmt_ip"] == "127.0.0.1"
    )


def test_originals_without_records_are_restored(spec: Path, tmp_path: Path) -> None:
    """A deploy killed after patching but before saving its records still restores."""
    before = snapshot(spec)
    plan = Lab.load(spec).plan
    (tmp_path / "s").mkdir()
    patch_profiles(plan, tmp_path / "s")
    assert snapshot(spec) != before
    restore_profiles(plan, [], tmp_path / "s")
    assert snapshot(spec) == before
