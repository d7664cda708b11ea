"""Capacity: each host's VMs against its memory, cores and disk (pure)."""

from __future__ import annotations

from pathlib import Path

from newtlab.lab import Lab
from newtlab.plan.capacity import DISK_BASE_MIB, DISK_PER_VM_MIB, Resources, capacity_problems
from specfactory import SWITCH_PLATFORM, linked, write_specs

ROOMY = Resources(memory_available_mib=100_000, cpus=8, disk_free_mib=100_000)


def _plan(tmp_path: Path, **platform: object):  # type: ignore[no-untyped-def]
    devices = linked(("a:Ethernet0", "b:Ethernet0"))
    spec = write_specs(tmp_path, devices, platforms={"sw": {**SWITCH_PLATFORM, **platform}})
    return Lab.load(spec).plan


def test_a_lab_that_fits_has_no_problems(tmp_path: Path) -> None:
    assert capacity_problems(_plan(tmp_path, vm_memory=1024, vm_cpus=2), {"local": ROOMY}) == []


def test_memory_counts_qemu_itself_by_accelerator(tmp_path: Path) -> None:
    plan = _plan(tmp_path, vm_memory=1000, vm_cpus=1)
    tight = Resources(memory_available_mib=2300, cpus=2, disk_free_mib=100_000)
    kvm = plan.model_copy(update={"accels": {"local": "kvm"}})
    tcg = plan.model_copy(update={"accels": {"local": "tcg"}})
    assert capacity_problems(kvm, {"local": tight}) == []  # 2 × (1000 + 60)
    assert capacity_problems(tcg, {"local": tight}) == [
        "2 VMs need 2400 MiB (2000 of guest memory + 200 MiB of QEMU each) but 2300 MiB are "
        "available"
    ]


def test_one_vm_with_more_vcpus_than_cores(tmp_path: Path) -> None:
    two_cores = Resources(memory_available_mib=100_000, cpus=2, disk_free_mib=100_000)
    assert capacity_problems(_plan(tmp_path, vm_cpus=2), {"local": two_cores}) == []
    problems = capacity_problems(_plan(tmp_path / "b", vm_cpus=4), {"local": two_cores})
    assert problems == [
        "a asks for 4 vCPUs but the host has 2 cores (set vm_cpus to 2 or less)",
        "b asks for 4 vCPUs but the host has 2 cores (set vm_cpus to 2 or less)",
    ]


def test_disk_for_overlays(tmp_path: Path) -> None:
    full = Resources(memory_available_mib=100_000, cpus=8, disk_free_mib=600)
    want = DISK_BASE_MIB + 2 * DISK_PER_VM_MIB
    assert capacity_problems(_plan(tmp_path), {"local": full}) == [
        f"600 MiB free for the lab's disks; 2 VMs want at least {want} MiB "
        f"({DISK_BASE_MIB} + {DISK_PER_VM_MIB} each)"
    ]
