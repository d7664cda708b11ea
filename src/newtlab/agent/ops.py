"""The agent's operations: one function per ``Host`` action, by lab and node name.

``LocalHost`` calls them directly; on a server they are called by name with
JSON arguments (``python3 -m <agent> OP``, see ``__main__``). Arguments and
results are JSON values (bytes excepted, which ``__main__`` encodes).
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

from . import AgentError, accel, bridge, caches, files, ports, procs, vm
from .layout import overlay
from .paths import home, lab_dir
from .tools import PACKAGES


def prepare_lab(lab: str) -> None:
    files.prepare_lab(lab)


def remove_lab(lab: str) -> None:
    files.remove_lab(lab)


def check_image(image: str, sha256: str = "") -> str | None:
    return files.image_problem(image, sha256)


def create_overlay(lab: str, node: str, base: str) -> None:
    files.create_overlay(base, lab_dir(lab) / overlay(node))


def read_file(lab: str, relative: str, offset: int = 0) -> bytes | None:
    return files.read_file(lab, relative, offset)


def pack(data: bytes) -> str:
    """Bytes as an argument (base64: arguments travel as JSON)."""
    return base64.b64encode(data).decode()


def write_file(lab: str, relative: str, data: str) -> None:
    """``data`` is ``pack``ed."""
    files.write_file(lab, relative, base64.b64decode(data))


def start_vm(lab: str, node: str, argv: list[str]) -> int:
    return vm.start(lab_dir(lab), node, argv)


def stop_vm(lab: str, node: str, pid: int, grace: float) -> bool:
    return vm.stop(lab_dir(lab), lab, node, pid, grace)


def vm_running(lab: str, node: str, pid: int) -> bool:
    return procs.is_ours(pid, procs.qemu_tag(lab, node))


def set_nic_link(lab: str, node: str, netdev: str, up: bool) -> None:
    """Carrier of one of the node's NICs on or off, as the guest sees it (QMP set_link)."""
    try:
        reply = vm.qmp(lab_dir(lab), node, "set_link", arguments={"name": netdev, "up": up})
    except OSError as exc:
        raise AgentError(f"{node}: its QEMU monitor did not answer ({exc})") from None
    if "error" in reply:
        raise AgentError(f"{node}: set_link {netdev}: {reply['error'].get('desc', reply)}")


def processes(lab: str) -> list[tuple[int, str, str]]:
    return procs.lab_processes(lab)


def start_bridge(lab: str, config: dict[str, Any]) -> int:
    return bridge.start(lab_dir(lab), lab, config)


def stop_bridge(lab: str) -> list[str]:
    return bridge.stop(lab)


def bridge_stats(lab: str) -> dict[str, Any] | None:
    return bridge.stats(lab_dir(lab))


def survey(lab: str) -> dict[str, Any]:
    """The lab's processes and its bridge's stats, in one call (one round trip to a server)."""
    return {"processes": processes(lab), "stats": bridge_stats(lab)}


def check_machine(needs: list[list[str]] | None = None) -> list[str]:
    """What this machine lacks to run labs, one line each; ``needs``: [file, package]
    pairs the lab's VMs need here besides QEMU (UEFI firmware)."""
    missing = [f"{tool} not found — install {package}" for tool, package in PACKAGES.items()
               if shutil.which(tool) is None]  # fmt: skip
    missing += [f"{path} not found — install {package}" for path, package in needs or []
                if not Path(path).exists()]  # fmt: skip
    return missing


def unused_caches() -> list[dict[str, Any]]:
    return caches.find()


def remove_caches(paths: list[str]) -> list[str]:
    return caches.remove(paths)


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


def probe_ports(uses: list[tuple[str, int, str]]) -> list[str]:
    return ports.probe(uses)


def choose_accel(requested: str, probe_files: tuple[str, str] | None) -> tuple[str, str]:
    """``probe_files``: the KVM probe's kernel and initramfs on this host, if any."""
    found = (Path(probe_files[0]), Path(probe_files[1])) if probe_files else None
    return accel.choose_accel(requested, home() / "cache" / "accel.json", found)


OPERATIONS = {
    op.__name__: op
    for op in (
        prepare_lab,
        remove_lab,
        check_image,
        create_overlay,
        read_file,
        write_file,
        start_vm,
        stop_vm,
        vm_running,
        set_nic_link,
        processes,
        start_bridge,
        stop_bridge,
        bridge_stats,
        survey,
        check_machine,
        resources,
        unused_caches,
        remove_caches,
        probe_ports,
        choose_accel,
    )
}
