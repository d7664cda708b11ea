"""The agent's operations, by name: what newtlab asks of one machine.

``LocalTransport`` calls them in a worker thread; on a server they run as
``python3 -m <agent> OP`` with JSON in and out (``__main__``). Arguments and
results are JSON values, bytes excepted (``__main__`` carries bytes as
``{"base64": ...}`` both ways). They fall in groups, one per seam that asks:
the machine and a lab's files (``Host``), QEMU (the ``qemu`` VM engine), the
snapshot store (``Host``) and newtlink (the ``newtlink`` datapath).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from . import AgentError, accel, bridge, caches, files, ports, procs, snapshots, vm
from .layout import boot_file, overlay
from .paths import home, lab_dir

OPERATIONS: dict[str, Callable[..., Any]] = {}
F = TypeVar("F", bound=Callable[..., Any])


def operation(function: F) -> F:
    """Make ``function`` callable by its name."""
    OPERATIONS[function.__name__] = function
    return function


# -- the machine and a lab's files ---------------------------------------------------------


@operation
def prepare_lab(lab: str) -> None:
    files.prepare_lab(lab)


@operation
def remove_lab(lab: str) -> None:
    files.remove_lab(lab)


@operation
def exposed_labs() -> list[str]:
    return files.exposed_labs()


@operation
def check_image(image: str, sha256: str = "") -> str | None:
    return files.image_problem(image, sha256)


@operation
def check_boot_file(kind: str, path: str) -> str | None:
    return files.boot_file_problem(kind, path)


@operation
def create_overlay(lab: str, node: str, base: str) -> None:
    files.create_overlay(base, lab_dir(lab) / overlay(node))


@operation
def link_boot_files(lab: str, node: str, paths: dict[str, str]) -> None:
    for kind, path in paths.items():
        files.link_boot_file(path, lab_dir(lab) / boot_file(node, kind))


@operation
def read_file(lab: str, relative: str, offset: int = 0) -> bytes | None:
    return files.read_file(lab, relative, offset)


@operation
def write_file(lab: str, relative: str, data: bytes) -> None:
    files.write_file(lab, relative, data)


@operation
def probe_ports(uses: list[tuple[str, int, str]]) -> list[str]:
    return ports.probe(uses)


@operation
def resources() -> dict[str, int]:
    """Memory available, cores and free disk under this home, in MiB and counts."""
    available = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) // 1024
    root = home()
    while not root.exists():  # the home may not exist yet: its nearest existing parent
        root = root.parent
    free = shutil.disk_usage(root).free // (1 << 20)
    cores = len(os.sched_getaffinity(0))  # the cores this machine lets its processes use
    return {"memory_available_mib": available, "cpus": cores, "disk_free_mib": free}


@operation
def unused_caches() -> list[dict[str, Any]]:
    return caches.find()


@operation
def remove_caches(paths: list[str]) -> list[str]:
    return caches.remove(paths)


@operation
def home_path() -> str:
    """This home's directory here, absolute (a libvirt domain's name carries its id)."""
    return str(home().absolute())


@operation
def lab_path(lab: str) -> str:
    """The lab's directory here, absolute (what a libvirt domain's XML names)."""
    return str(lab_dir(lab).absolute())


@operation
def domain_pids(names: list[str]) -> dict[str, int]:
    """The PIDs of the QEMUs libvirt runs here for these domains."""
    return procs.libvirt_guests(names)


@operation
def libvirt_log(domain: str, daemon: str, offset: int = 0) -> bytes | None:
    """A libvirt domain's QEMU log (``daemon``: system or session) from ``offset`` on."""
    return files.read_libvirt_log(domain, daemon, offset)


# -- QEMU, started by the agent (the ``qemu`` VM engine) ---------------------------------


@operation
def qemu_start(lab: str, node: str, argv: list[str]) -> int:
    return vm.start(lab_dir(lab), node, argv)


@operation
def qemu_stop(lab: str, node: str, pid: int, grace: float) -> bool:
    return vm.stop(lab_dir(lab), lab, node, pid, grace)


@operation
def qemu_running(lab: str, node: str, pid: int) -> bool:
    return procs.is_ours(pid, procs.qemu_tag(lab, node))


@operation
def qemu_set_link(lab: str, node: str, netdev: str, up: bool) -> None:
    """Carrier of one of the node's NICs on or off, as the guest sees it (QMP set_link)."""
    try:
        reply = vm.qmp(lab_dir(lab), node, "set_link", arguments={"name": netdev, "up": up})
    except OSError as exc:
        raise AgentError(f"{node}: its QEMU monitor did not answer ({exc})") from None
    if "error" in reply:
        raise AgentError(f"{node}: set_link {netdev}: {reply['error'].get('desc', reply)}")


@operation
def qemu_processes(lab: str | None = None) -> list[tuple[int, str, str, str]]:
    return procs.processes(procs.QEMU_KINDS, lab)


@operation
def qemu_accel(requested: str, probe_files: list[str] | None) -> tuple[str, str]:
    """``probe_files``: the KVM probe's kernel and initramfs on this machine, if any."""
    found = (Path(probe_files[0]), Path(probe_files[1])) if probe_files else None
    return accel.choose_accel(requested, home() / "cache" / "accel.json", found)


@operation
def qemu_set_running(lab: str, node: str, running: bool) -> None:
    snapshots.set_running(lab, node, running)


@operation
def qemu_snapshot(lab: str, node: str, action: str, tag: str) -> None:
    snapshots.run(lab, node, action, tag)


@operation
def qemu_vm_facts(lab: str, node: str, machine: str) -> dict[str, str]:
    return snapshots.vm_facts(lab, node, machine)


@operation
def qemu_binary_facts(binary: str) -> dict[str, Any]:
    return snapshots.binary_facts(binary)


# -- lab snapshots: the tags in overlays, and this host's store ----------------------------


@operation
def snapshot_tags(lab: str, node: str) -> list[str]:
    return snapshots.tags(lab, node)


@operation
def snapshot_delete_tag(lab: str, node: str, tag: str) -> None:
    snapshots.delete_tag(lab, node, tag)


@operation
def snapshot_keep(lab: str, name: str, nodes: list[str]) -> None:
    snapshots.keep(lab, name, nodes)


@operation
def snapshot_trim(lab: str, name: str) -> dict[str, dict[str, Any]]:
    return snapshots.trim(lab, name)


@operation
def snapshot_stage(lab: str, name: str, node: str, base_bytes: int, base_mtime_ns: int) -> None:
    snapshots.stage(lab, name, node, base_bytes, base_mtime_ns)


@operation
def snapshot_write(lab: str, name: str, file: str, data: bytes) -> None:
    snapshots.write(lab, name, file, data)


@operation
def snapshot_read(lab: str, name: str, file: str) -> bytes | None:
    return snapshots.read(lab, name, file)


@operation
def snapshot_remove(lab: str, name: str) -> None:
    snapshots.remove(lab, name)


@operation
def snapshot_parts() -> list[dict[str, Any]]:
    return snapshots.parts()


# -- newtlink, the link bridge (the ``newtlink`` datapath) -------------------------------


@operation
def newtlink_start(lab: str, config: dict[str, Any]) -> int:
    return bridge.start(lab_dir(lab), lab, config)


@operation
def newtlink_stop(lab: str) -> list[str]:
    return bridge.stop(lab)


@operation
def newtlink_processes(lab: str | None = None) -> list[tuple[int, str, str, str]]:
    return procs.processes(procs.NEWTLINK_KINDS, lab)


@operation
def newtlink_survey(lab: str) -> dict[str, Any]:
    """The lab's bridge processes and its stats, in one call (one round trip to a server)."""
    return {"processes": newtlink_processes(lab), "stats": bridge.stats(lab_dir(lab))}
