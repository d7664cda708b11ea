"""Lab snapshots as newtlab records them: ``snapshots/<lab>/<name>/snapshot.json``.

A snapshot outlives its lab (``destroy`` leaves ``snapshots/`` alone). Its record
holds the lab's plan, from which a destroyed lab is deployed again, and says
what it needs to come back — each VM's hardware (its QEMU command line but
for the accelerator, CPU model and machine type, which are kept apart), QEMU's
version, the versioned machine type, the accelerator and CPU model — and what
the lab's links were set to. ``differences`` says what stands in the way of a
restore. Each host keeps its VMs' disks in its own store (``agent.snapshots``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .agent.fsutil import atomic_write
from .agent.snapshots import private_store_dir
from .agent.snapshots import store_dir as snapshot_dir
from .errors import LabStateError, UsageError
from .home import newtlab_home
from .plan.model import Accel, LinkSettings, NodePlan, Plan
from .suggest import did_you_mean

MANIFEST = "snapshot.json"
SSH_KEY = "ssh_key"  # the lab's key pair then: its guests trust that key, and only it
# Kept apart from a VM's hardware: each is compared on its own, and the machine type
# is pinned to its versioned name when a VM is re-created.
_SEPARATE = ("-accel", "-cpu", "-machine")
# What a libvirt domain's XML is rendered from (plan.domain_xml), for its fingerprint.
_DOMAIN_FIELDS = {"name", "image", "memory", "cpus", "nic_driver", "disk_driver",
                  "cpu_features", "firmware", "smbios", "extra_devices", "nics", "pci_bridges",
                  "engine"}  # fmt: skip
_KERNEL_FIELDS = {"kernel", "initrd", "kernel_cmdline"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class VmSnapshot(BaseModel):
    host: str
    hardware: str  # sha256 of its argv without _SEPARATE's values
    qemu: str  # e.g. 7.2.22
    machine: str  # versioned, e.g. pc-i440fx-7.2
    accel: Accel
    cpu: str
    bytes: int = 0  # its disk in the store, memory and devices included
    base: str = ""  # the base image under its overlay, as it was then
    base_bytes: int = 0
    base_mtime_ns: int = 0


class Snapshot(BaseModel):
    name: str
    lab: str
    created: datetime
    paused_seconds: float  # how long the VMs were paused to take it
    vms: dict[str, VmSnapshot]
    links: dict[str, LinkSettings]  # each link's settings then (impairment, cable pulled)
    plan: Plan  # the lab as deployed then: a destroyed lab comes back from it

    @property
    def bytes(self) -> int:
        return sum(vm.bytes for vm in self.vms.values())

    def summary(self) -> dict[str, object]:
        """What ``snapshot list --json`` shows of it."""
        return {
            "lab": self.lab,
            "name": self.name,
            "created": self.created.isoformat(timespec="seconds"),
            "vms": sorted(self.vms),
            "hosts": sorted({vm.host for vm in self.vms.values()}),
            "bytes": self.bytes,
            "paused_seconds": self.paused_seconds,
            "qemu": sorted({vm.qemu for vm in self.vms.values()}),
            "accel": sorted({vm.accel for vm in self.vms.values()}),
        }


def check_snapshot_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"snapshot name {name!r}: use letters, digits, '.', '_' and '-' (at most 64, "
            "starting with a letter or digit)"
        )
    return name


def argv_value(argv: list[str], option: str) -> str:
    """The value following ``option`` in a QEMU command line ('' if absent)."""
    return argv[argv.index(option) + 1] if option in argv[:-1] else ""


def hardware(node: NodePlan) -> str:
    """A fingerprint of the VM a saved state can be loaded into: its QEMU command line
    without what is compared separately (accelerator, CPU model, machine type); for a
    libvirt domain, whose XML is rendered on its host, what that XML is made of."""
    argv = list(node.qemu_argv)
    for option in _SEPARATE:
        if option in argv[:-1]:
            del argv[argv.index(option) : argv.index(option) + 2]
    # A direct boot's fields only when set: a disk-booted domain's fingerprint is as it was.
    fields = _DOMAIN_FIELDS | (_KERNEL_FIELDS if node.kernel else set())
    made_of = argv or node.model_dump(mode="json", include=fields)
    return hashlib.sha256(json.dumps([node.host, made_of], sort_keys=True).encode()).hexdigest()


def save_snapshot(snapshot: Snapshot, ssh_key: Path) -> None:
    """The record, with the lab's SSH key pair (``ssh_key`` and its ``.pub``)."""
    directory = private_store_dir(snapshot.lab, snapshot.name)
    for suffix in ("", ".pub"):
        atomic_write(directory / (SSH_KEY + suffix), Path(f"{ssh_key}{suffix}").read_bytes(), 0o600)
    atomic_write(directory / MANIFEST, snapshot.model_dump_json(indent=2).encode(), 0o600)


def restore_key(snapshot: Snapshot, ssh_key: Path) -> None:
    """The snapshot's key pair as the lab's (``ssh_key`` and its ``.pub``)."""
    directory = snapshot_dir(snapshot.lab, snapshot.name)
    for suffix in ("", ".pub"):
        atomic_write(
            Path(f"{ssh_key}{suffix}"), (directory / (SSH_KEY + suffix)).read_bytes(), 0o600
        )


def remove_record(lab: str, name: str) -> None:
    """The record (and what else is left in its directory here); the lab's directory of
    snapshots once empty."""
    directory = snapshot_dir(lab, name)
    shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(OSError):
        directory.parent.rmdir()


def list_snapshots(lab: str | None = None) -> list[Snapshot]:
    """This home's snapshots (of ``lab``, or of every lab), oldest first."""
    root = newtlab_home() / "snapshots"
    pattern = f"{lab}/*/{MANIFEST}" if lab else f"*/*/{MANIFEST}"
    found = []
    for path in root.glob(pattern) if root.is_dir() else []:
        try:
            found.append(Snapshot.model_validate_json(path.read_text()))
        except (OSError, ValidationError):
            continue  # a damaged record: prune lists its directory
    return sorted(found, key=lambda s: (s.lab, s.created))


def load_snapshot(lab: str, name: str) -> Snapshot:
    path = snapshot_dir(lab, name) / MANIFEST
    try:
        return Snapshot.model_validate_json(path.read_text())
    except FileNotFoundError:
        names = [s.name for s in list_snapshots(lab)]
        known = f" (its snapshots: {', '.join(names)})" if names else " (it has none)"
        raise LabStateError(
            f"lab {lab} has no snapshot {name!r}{did_you_mean(name, names)}{known}"
        ) from None
    except (OSError, ValidationError) as exc:
        raise LabStateError(f"{path} cannot be read: {exc}") from None


def differences(snapshot: Snapshot, plan: Plan, facts: dict[str, dict[str, object]]) -> list[str]:
    """What stands between ``snapshot`` and the lab of ``plan`` whose VMs' QEMU has
    ``facts`` (per node: ``qemu``, and ``machines`` or the running VM's ``machine``);
    one line each, empty if it can be restored."""
    found = []
    nodes = {node.name: node for node in plan.nodes}
    if set(nodes) != set(snapshot.vms):
        extra, gone = sorted(set(nodes) - set(snapshot.vms)), sorted(set(snapshot.vms) - set(nodes))
        found.append(f"the lab's VMs are not the snapshot's (new: {', '.join(extra) or 'none'};"
                     f" gone: {', '.join(gone) or 'none'})")  # fmt: skip
    for name in sorted(set(nodes) & set(snapshot.vms)):
        saved, node, have = snapshot.vms[name], nodes[name], facts.get(name, {})
        if saved.hardware != hardware(node):
            found.append(f"{name}: its VM is not the one saved (the spec changed its devices, "
                         "memory, image or host since)")  # fmt: skip
        if have.get("qemu") != saved.qemu:
            found.append(f"{name}: saved by QEMU {saved.qemu}, {node.host} has {have.get('qemu')}")
        machines = have.get("machines")
        running = have.get("machine")
        if isinstance(machines, list) and saved.machine not in machines:
            found.append(f"{name}: machine type {saved.machine} is not in {node.host}'s QEMU")
        elif running is not None and running != saved.machine:
            found.append(f"{name}: runs machine type {running}, saved on {saved.machine}")
        accel = plan.accels.get(node.host, plan.accel)
        if accel != saved.accel:
            found.append(f"{name}: saved under {saved.accel}, {node.host} runs {accel}")
        cpu = argv_value(node.qemu_argv, "-cpu")
        if cpu != saved.cpu:
            found.append(f"{name}: saved with CPU model {saved.cpu}, now {cpu}")
    return found
