"""Lab snapshots on one host: QEMU's own internal snapshots, and the store that keeps them.

A VM's snapshot (memory, devices and disk at one moment) is saved *inside* its
qcow2 overlay by QEMU's ``snapshot-save`` job, so a running lab can go back to
it in place (``snapshot-load``). The overlay, snapshot included, is then copied
into this host's store, ``<home>/snapshots/<lab>/<name>/<node>.qcow2``, which
``destroy`` leaves alone: a destroyed lab is re-created from those copies.
The overlay node is named in the argv (``layout.DISK_NODE``): the jobs need it.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from . import AgentError, layout, vm
from .fsutil import atomic_write
from .paths import ensure_private_dir, home, lab_dir
from .tools import QEMU_IMG

JOB_TIMEOUT = 900.0  # a SONiC VM's 8 GiB of memory, written to a slow disk


def store_dir(lab: str, name: str) -> Path:
    return home() / "snapshots" / lab / name


def private_store_dir(lab: str, name: str) -> Path:
    """``store_dir``, made with each level private (mode 0700): it holds whole memories."""
    for path in (home() / "snapshots", home() / "snapshots" / lab, store_dir(lab, name)):
        ensure_private_dir(path)
    return store_dir(lab, name)


def run(lab: str, node: str, action: str, tag: str) -> None:
    """``snapshot-save``, ``-load`` or ``-delete`` of ``tag`` in the node's overlay."""
    if action not in ("save", "load", "delete"):
        raise AgentError(f"no snapshot action {action!r}")
    disk = {"devices": [layout.DISK_NODE]}
    arguments = {
        "tag": tag,
        **disk,
        **({} if action == "delete" else {"vmstate": layout.DISK_NODE}),
    }
    vm.qmp_job(lab_dir(lab), node, f"snapshot-{action}", arguments, JOB_TIMEOUT)


def set_running(lab: str, node: str, running: bool) -> None:
    """Resume (``cont``) or pause (``stop``) the node's VM: its clock stops while paused."""
    command = "cont" if running else "stop"
    try:
        reply = vm.qmp(lab_dir(lab), node, command)
    except (OSError, ValueError) as exc:
        raise AgentError(f"{node}: its QEMU monitor did not answer ({exc})") from None
    if "error" in reply:
        raise AgentError(f"{node}: {command}: {reply['error'].get('desc', reply)}")


def vm_facts(lab: str, node: str, machine: str) -> dict[str, str]:
    """What a saved state needs again, asked of the running VM: its QEMU's version and
    the versioned machine type ``machine`` (an alias such as ``pc``) stands for there."""
    try:
        version = vm.qmp(lab_dir(lab), node, "query-version").get("return", {})
        machines = vm.qmp(lab_dir(lab), node, "query-machines").get("return", [])
    except (OSError, ValueError) as exc:
        raise AgentError(f"{node}: its QEMU monitor did not answer ({exc})") from None
    number = version.get("qemu", {})
    resolved = next((m["name"] for m in machines if m.get("alias") == machine), machine)
    return {"qemu": f"{number.get('major')}.{number.get('minor')}.{number.get('micro')}",
            "machine": resolved}  # fmt: skip


def binary_facts(binary: str) -> dict[str, Any]:
    """The same of the QEMU installed here: its version and every machine type it has."""
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                 timeout=30, check=True).stdout  # fmt: skip
        listing = subprocess.run([binary, "-machine", "help"], capture_output=True, text=True,
                                 timeout=30, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise AgentError(f"{binary} does not answer ({exc}) — install qemu-system-x86") from None
    found = re.search(r"version (\d+\.\d+\.\d+)", version)
    machines = [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]
    return {"qemu": found.group(1) if found else version.strip(), "machines": machines}


def tags(lab: str, node: str) -> list[str]:
    """The snapshots the node's overlay holds (read while its VM may run: shared)."""
    overlay = lab_dir(lab) / layout.overlay(node)
    return _tags_of(overlay) if overlay.exists() else []


def _tags_of(path: Path) -> list[str]:
    argv = [QEMU_IMG, "info", "-U", "--output=json", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise AgentError(f"qemu-img cannot read {path}: {result.stderr.strip()}")
    return [str(s["name"]) for s in json.loads(result.stdout).get("snapshots", [])]


def delete_tag(lab: str, node: str, tag: str) -> None:
    """Remove ``tag`` from a stopped VM's overlay (a running one's: ``run(…, "delete")``)."""
    _delete(lab_dir(lab) / layout.overlay(node), tag)


def _delete(overlay: Path, tag: str) -> None:
    argv = [QEMU_IMG, "snapshot", "-d", tag, str(overlay)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise AgentError(f"removing snapshot {tag} from {overlay}: {result.stderr.strip()}")


def _copy(source: Path, target: Path) -> None:
    """A sparse copy (shared blocks where the file system can): overlays are mostly holes."""
    argv = ["cp", "--sparse=always", "--reflink=auto", str(source), str(target)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        target.unlink(missing_ok=True)
        raise AgentError(f"copying {source} to {target}: {result.stderr.strip()}")


def _backing(path: Path) -> dict[str, Any]:
    """The base image an overlay reads through, and its size and time (a rebuilt base
    would make the saved disk meaningless)."""
    argv = [QEMU_IMG, "info", "-U", "--output=json", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    info = json.loads(result.stdout) if result.returncode == 0 else {}
    base = info.get("full-backing-filename") or info.get("backing-filename") or ""
    stat = Path(base).stat() if base and Path(base).exists() else None
    return {"base": base, "base_bytes": stat.st_size if stat else 0,
            "base_mtime_ns": stat.st_mtime_ns if stat else 0}  # fmt: skip


def keep(lab: str, name: str, nodes: list[str]) -> None:
    """Copy the nodes' overlays (their VMs paused, the snapshot inside) into the store."""
    directory = private_store_dir(lab, name)
    for node in nodes:
        target = directory / f"{node}.qcow2"
        _copy(lab_dir(lab) / layout.overlay(node), target)
        target.chmod(0o600)


def trim(lab: str, name: str) -> dict[str, dict[str, Any]]:
    """The store's copies without the overlays' other snapshots (their VMs may run again
    meanwhile: the copies are the store's own); per node, the bytes it takes there and
    its base image."""
    kept = {}
    for target in sorted(store_dir(lab, name).glob("*.qcow2")):
        for other in _tags_of(target):
            if other != name:
                _delete(target, other)
        kept[target.stem] = {"bytes": target.stat().st_blocks * 512, **_backing(target)}
    return kept


def stage(lab: str, name: str, node: str, base_bytes: int, base_mtime_ns: int) -> None:
    """The node's overlay, in the lab's directory, made from the store's copy — if the
    base image under it is the one it was saved over (same size and time)."""
    source = store_dir(lab, name) / f"{node}.qcow2"
    if not source.exists():
        raise AgentError(f"snapshot {name} of lab {lab} has no disk of {node} here ({source})")
    base = _backing(source)
    if (base["base_bytes"], base["base_mtime_ns"]) != (base_bytes, base_mtime_ns):
        raise AgentError(
            f"{node}: its base image {base['base'] or '(missing)'} is not the one snapshot "
            f"{name} was saved over (its size or time differ): the saved disk reads through it"
        )
    target = lab_dir(lab) / layout.overlay(node)
    target.parent.mkdir(parents=True, exist_ok=True)
    _copy(source, target)


def _store_file(lab: str, name: str, file: str) -> Path:
    if "/" in file or file.startswith(".") or not file:
        raise AgentError(f"not a file of a snapshot: {file!r}")
    return store_dir(lab, name) / file


def write(lab: str, name: str, file: str, data: bytes) -> None:
    """A file kept with this host's part of a snapshot (an engine's own record of it)."""
    private_store_dir(lab, name)
    atomic_write(_store_file(lab, name, file), data, 0o600)


def read(lab: str, name: str, file: str) -> bytes | None:
    path = _store_file(lab, name, file)
    return path.read_bytes() if path.exists() else None


def remove(lab: str, name: str) -> None:
    """This host's part of a snapshot, and the lab's store directory once it is empty."""
    shutil.rmtree(store_dir(lab, name), ignore_errors=True)
    with contextlib.suppress(OSError):
        store_dir(lab, name).parent.rmdir()


def parts() -> list[dict[str, Any]]:
    """Every snapshot part this host keeps: lab, name, its nodes and the bytes they take."""
    root = home() / "snapshots"
    found = []
    for directory in sorted(root.glob("*/*")) if root.is_dir() else []:
        disks = sorted(directory.glob("*.qcow2"))
        found.append({"lab": directory.parent.name, "name": directory.name,
                      "nodes": [disk.stem for disk in disks],
                      "bytes": sum(disk.stat().st_blocks * 512 for disk in disks)})  # fmt: skip
    return found
