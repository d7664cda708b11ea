"""What a snapshot records and what it refuses: hardware fingerprints, the machine type
pinned for a re-created VM, the differences that stop a restore, names and records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from newtlab.errors import LabStateError, UsageError
from newtlab.plan.model import Accel, Plan
from newtlab.plan.nodes import Homes
from newtlab.plan.plan import build_plan
from newtlab.plan.qemu_args import held_argv
from newtlab.snapshots import (
    Snapshot,
    VmSnapshot,
    check_snapshot_name,
    differences,
    hardware,
    list_snapshots,
    load_snapshot,
    save_snapshot,
)
from newtlab.spec.load import load_specs

LINE3 = Path(__file__).resolve().parents[2] / "examples" / "line3"


def _plan(tmp_path: Path, accel: Accel = "tcg", memory: int | None = None) -> Plan:
    specs = load_specs(LINE3)
    if memory is not None:
        platform = specs.platforms.platforms["newtlab-host"]
        specs.platforms.platforms["newtlab-host"] = platform.model_copy(
            update={"vm_memory": memory}
        )
    return build_plan(specs, "line3", tmp_path, Homes(tmp_path, tmp_path), accel)


def _snapshot(plan: Plan) -> Snapshot:
    return Snapshot(
        name="s1", lab=plan.lab, created=datetime.now(UTC), paused_seconds=1.0, plan=plan,
        links={}, vms={node.name: VmSnapshot(
            host=node.host, hardware=hardware(node), qemu="7.2.22", machine="pc-i440fx-7.2",
            accel="tcg", cpu="max") for node in plan.nodes},
    )  # fmt: skip


INSTALLED = {"qemu": "7.2.22", "machines": ["pc", "pc-i440fx-7.2", "q35"]}


def test_the_same_lab_on_the_same_qemu_restores(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert differences(_snapshot(plan), plan, dict.fromkeys(("r1", "r2", "r3"), INSTALLED)) == []


def test_each_difference_is_named(tmp_path: Path) -> None:
    saved = _snapshot(_plan(tmp_path))
    bigger = _plan(tmp_path, memory=256)
    newer = {"qemu": "8.2.2", "machines": ["pc-i440fx-8.2"]}
    found = differences(saved, bigger, {"r1": newer, "r2": INSTALLED, "r3": INSTALLED})
    assert "r1: its VM is not the one saved (the spec changed its devices, memory, image or " \
           "host since)" in found  # fmt: skip
    assert "r1: saved by QEMU 7.2.22, local has 8.2.2" in found
    assert "r1: machine type pc-i440fx-7.2 is not in local's QEMU" in found
    assert not [line for line in found if line.startswith(("r2: saved", "r3: saved"))]
    on_kvm = differences(saved, _plan(tmp_path, "kvm"), dict.fromkeys(saved.vms, INSTALLED))
    assert "r2: saved under tcg, local runs kvm" in on_kvm
    assert "r2: saved with CPU model max, now host" in on_kvm
    assert not [line for line in on_kvm if "not the one saved" in line]  # accel aside
    older = {"qemu": "7.2.22", "machine": "pc-i440fx-7.1"}
    running = differences(saved, _plan(tmp_path), {name: older for name in saved.vms})
    assert "r3: runs machine type pc-i440fx-7.1, saved on pc-i440fx-7.2" in running


def test_a_recreated_vm_is_pinned_and_held(tmp_path: Path) -> None:
    argv = _plan(tmp_path).node("r1").qemu_argv
    pinned = held_argv(argv, "pc-i440fx-7.2")
    assert pinned[pinned.index("-machine") + 1] == "pc-i440fx-7.2" and pinned[-1] == "-S"
    assert argv[argv.index("-machine") + 1] == "pc"  # the plan's own is left alone
    assert "node-name=overlay" in " ".join(argv)  # the jobs name the overlay so


@pytest.mark.parametrize("name", ["", "-x", "a b", "x/y", "é", "a" * 65])
def test_snapshot_names_are_safe(name: str) -> None:
    with pytest.raises(UsageError, match="snapshot name"):
        check_snapshot_name(name)


def test_records_are_kept_per_lab_and_a_missing_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWTLAB_HOME", str(tmp_path / "home"))
    key = tmp_path / "id"
    key.write_text("private")
    key.with_suffix(".pub").write_text("public")
    snapshot = _snapshot(_plan(tmp_path))
    save_snapshot(snapshot, key)
    assert [s.name for s in list_snapshots("line3")] == ["s1"] == [s.name for s in list_snapshots()]
    assert load_snapshot("line3", "s1") == snapshot
    store = tmp_path / "home" / "snapshots"
    assert {p.stat().st_mode & 0o777 for p in (store, store / "line3", store / "line3" / "s1")} \
        == {0o700}  # fmt: skip
    assert (store / "line3" / "s1" / "ssh_key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(
        LabStateError, match=r"no snapshot 's2' — did you mean s1\? \(its snapshots: s1\)"
    ):
        load_snapshot("line3", "s2")
