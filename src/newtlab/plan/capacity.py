"""Will the lab fit? Memory, vCPUs and disk of each host against what its VMs ask (pure).

A VM needs its ``vm_memory`` plus what QEMU itself takes: measured here with
newtlab's host image at ``-m 128`` (RSS after boot), ~200 MiB under TCG
(its translation cache) and ~60 MiB under KVM. Sharing cores between VMs
is normal (the default example runs three one-vCPU VMs on two cores); one
VM with more vCPUs than its host has cores is not. Overlays start empty and
grow with what guests write: a host needs some room for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Plan

QEMU_OVERHEAD_MIB = {"tcg": 200, "kvm": 60}
DISK_BASE_MIB = 1024  # free space a host keeps, whatever the lab
DISK_PER_VM_MIB = 256  # room for each overlay to grow


@dataclass(frozen=True)
class Resources:
    """What a host has for new VMs."""

    memory_available_mib: int
    cpus: int
    disk_free_mib: int


def capacity_problems(plan: Plan, resources: dict[str, Resources]) -> list[str]:
    """One line per shortfall, with the numbers; empty when the lab fits."""
    problems = []
    for host, have in resources.items():
        nodes = [n for n in plan.nodes if n.host == host]
        if not nodes:
            continue
        where = "" if len(resources) == 1 else f"{host}: "
        overhead = QEMU_OVERHEAD_MIB[plan.accels.get(host, plan.accel)]
        memory = sum(n.memory + overhead for n in nodes)
        if memory > have.memory_available_mib:
            problems.append(
                f"{where}{len(nodes)} VMs need {memory} MiB ({sum(n.memory for n in nodes)} "
                f"of guest memory + {overhead} MiB of QEMU each) but "
                f"{have.memory_available_mib} MiB are available"
            )
        for node in nodes:
            if node.cpus > have.cpus:
                problems.append(
                    f"{where}{node.name} asks for {node.cpus} vCPUs but the host has "
                    f"{have.cpus} cores (set vm_cpus to {have.cpus} or less)"
                )
        disk = DISK_BASE_MIB + DISK_PER_VM_MIB * len(nodes)
        if disk > have.disk_free_mib:
            problems.append(
                f"{where}{have.disk_free_mib} MiB free for the lab's disks; {len(nodes)} VMs "
                f"want at least {disk} MiB ({DISK_BASE_MIB} + {DISK_PER_VM_MIB} each)"
            )
    return problems
