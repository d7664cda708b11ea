"""``newtlab doctor``: can this machine (and a spec's server pool) run labs? One line per check.

Each check is OK, WARN (labs run, something is missing or tight) or FAIL
(labs cannot run), with what to do. With a plan, its ports are probed and
every server of its pool is reached and checked as deploy would.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from ..agent.paths import home
from ..image.build import IMAGE_NAME
from ..plan.capacity import QEMU_OVERHEAD_MIB
from ..plan.model import Plan
from ..plan.qemu_args import UEFI_FIRMWARE
from ..runtime.host import Host
from ..runtime.hosts import local_host, open_hosts
from .deploy import port_conflicts

Level = Literal["OK", "WARN", "FAIL"]
MEMORY_LOW_MIB = 2048  # room for a few small VMs
DISK_LOW_MIB = 4096


@dataclass(frozen=True)
class Check:
    host: str
    what: str
    level: Level
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


async def _version(host: Host, tool: str) -> str:
    result = await host.run([tool, "--version"])
    return result.output.splitlines()[0].strip() if result.returncode == 0 else ""


def _check(host: str, what: str, ok: bool, detail: str, fix: str, bad: Level = "WARN") -> Check:
    return Check(host, what, "OK" if ok else bad, detail, "" if ok else fix)


async def machine_checks(host: Host) -> list[Check]:
    """QEMU and its tools, the accelerator, memory, disk and what some labs need."""
    name = host.name
    checks = []
    tools = host.engine.tools
    for tool, package in tools.items():
        version = await _version(host, tool)
        fix = f"apt-get install {package}"
        checks.append(_check(name, tool, bool(version), version or "not found", fix, "FAIL"))
    # One call: a server's python3 and SSH forwarding, the tools again, the UEFI firmware.
    missing = await host.check_machine([(UEFI_FIRMWARE, "ovmf")])
    has_uefi = not any(f"{UEFI_FIRMWARE} not found" in line for line in missing)
    shown = (*tools, UEFI_FIRMWARE)  # each has a line of its own
    daemon = host.engine.name == "libvirt"  # plain QEMU's tools have lines of their own
    problems = await host.engine.problems() if daemon else []  # the VM engine line's
    checks += [Check(name, "machine", "FAIL", line) for line in missing
               if not any(f"{item} not found" in line for item in shown)
               and line.removeprefix(f"{name}: ") not in problems]  # fmt: skip
    if daemon:
        detail = "; ".join(problems) if problems else await host.engine.describe()
        checks.append(_check(name, "VM engine", not problems, detail, LIBVIRT_FIX, "FAIL"))
    if all(c.level == "OK" for c in checks):
        accel, note = await host.engine.choose_accel("auto")
        detail = accel + (f" ({note})" if note else "")
        checks.append(_check(name, "accelerator", accel == "kvm", detail, TCG_FIX))
    have = await host.resources()
    room = have.memory_available_mib // (128 + QEMU_OVERHEAD_MIB["tcg"])
    memory = (f"{have.memory_available_mib} MiB available (about {room} host-image VMs under "
              f"TCG), {have.cpus} cores")  # fmt: skip
    checks.append(_check(name, "memory", have.memory_available_mib >= MEMORY_LOW_MIB, memory,
                         MEMORY_FIX))  # fmt: skip
    disk = f"{have.disk_free_mib} MiB free under NEWTLAB_HOME"
    checks.append(_check(name, "disk", have.disk_free_mib >= DISK_LOW_MIB, disk, DISK_FIX))
    checks.append(_check(name, "UEFI firmware", has_uefi, UEFI_FIRMWARE if has_uefi else "missing",
                         UEFI_FIX))  # fmt: skip
    exposed = await host.exposed_labs()
    private = "every lab directory is its owner's only"
    checks.append(_check(name, "lab privacy", not exposed, "; ".join(exposed) or private,
                         PRIVACY_FIX))  # fmt: skip
    return checks


LIBVIRT_FIX = (
    "start libvirtd (and virtlogd) there, let this user manage qemu:///system, and set "
    "qemu.conf's user/group to one that can open NEWTLAB_HOME (docs/libvirt.md)"
)
TCG_FIX = "labs run under TCG, several times slower; a machine with working KVM is faster"
MEMORY_FIX = "free memory or run fewer VMs (deploy refuses a lab that does not fit)"
DISK_FIX = "free disk space: overlays grow with what guests write"
UEFI_FIX = "apt-get install ovmf (only platforms with vm_firmware uefi need it)"
PRIVACY_FIX = (
    "chmod 700 each of them: other users can open the consoles (root shells) and VM NICs "
    "of a lab whose directory they can enter"
)


def _this_machine_only() -> list[Check]:
    """What only newtlab's own machine needs: ssh for `newtlab ssh`, the host image."""
    ssh = shutil.which("ssh")
    image = Path(home()) / "images" / f"{IMAGE_NAME}.qcow2"
    return [
        _check("local", "ssh client", bool(ssh), ssh or "not found", SSH_FIX),
        _check("local", "host image", image.exists(), str(image), IMAGE_FIX),
    ]


SSH_FIX = "apt-get install openssh-client (for newtlab ssh)"
IMAGE_FIX = "newtlab image build host (the examples use it)"
UNREACHABLE_FIX = "check the server's address, user and key in topology.json"
PORTS_FIX = "stop what holds them, or change the port bases in topology.json"


async def doctor(plan: Plan | None) -> list[Check]:
    """This machine's checks; with a plan, its ports and every server of its pool too."""
    if plan is None:
        return [*_this_machine_only(), *await machine_checks(local_host())]
    checks = _this_machine_only()
    async with open_hosts(plan, partial=True) as hosts:
        for name, why in hosts.unreachable.items():
            checks.append(Check(name, "reachable", "FAIL", why, UNREACHABLE_FIX))
        found = await asyncio.gather(*(machine_checks(host) for host in hosts.values()))
        checks += [check for host_checks in found for check in host_checks]
        conflicts = await port_conflicts(plan, hosts)
    if conflicts:
        checks.append(Check("lab", "ports", "FAIL", "; ".join(conflicts), PORTS_FIX))
    else:
        checks.append(Check("lab", "ports", "OK", f"every port of lab {plan.lab} is free"))
    return checks
