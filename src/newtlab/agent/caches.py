"""What a home keeps for deploys from other machines, and which of it nothing uses.

A server's home holds the runtimes shipped to it (``runtime/<digest>/``, one
per newtlab version) and the base images uploaded to it
(``images/<sha256[:16]>/<name>``). A runtime is unused when it is not the
caller's and no process runs from it (a bridge runs with it on
``PYTHONPATH``); an uploaded image when no overlay of any lab of this home is
backed by it and no node of one links to it as its kernel or initramfs.
Interrupted copies (``runtime/.<digest>.<tag>``, ``*.part-<tag>``) are unused
once no process has them open.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any

from . import layout
from .paths import home

_UPLOAD_DIR = re.compile(r"[0-9a-f]{16}")
_RUNTIME_DIR = re.compile(r"[0-9a-f]{8,64}")
_STAGING_DIR = re.compile(r"\.[0-9a-f]{8,64}\.[0-9a-f]{8}")
_PARTIAL = re.compile(r".+\.part-[0-9a-f]{8}")


def backing_file(path: Path) -> str:
    """The backing file a qcow2 header names ('' for none, or not a qcow2)."""
    try:
        with path.open("rb") as f:
            header = f.read(20)
            if len(header) < 20 or header[:4] != b"QFI\xfb":
                return ""
            offset, size = struct.unpack(">QI", header[8:20])
            if not offset or not size:
                return ""
            f.seek(offset)
            return f.read(size).decode(errors="replace")
    except OSError:
        return ""


def _used_images(root: Path) -> set[str]:
    """Real paths of every base image an overlay of a lab of this home is backed by, and
    of every kernel and initramfs a node of one boots directly (its links)."""
    used = set()
    labs = root / "labs"
    for overlay in labs.glob(f"*/{layout.overlay('*')}"):
        backing = backing_file(overlay)
        if backing:
            used.add(os.path.realpath(backing))
    for kind in ("kernel", "initrd"):
        used.update(os.path.realpath(p) for p in labs.glob(f"*/{layout.boot_file('*', kind)}"))
    return used


def _open_or_run_from() -> set[str]:
    """Paths on some live process's PYTHONPATH, or open by one (as far as we may look)."""
    paths: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            environ = []
        for variable in environ:
            if variable.startswith(b"PYTHONPATH="):
                paths.update(os.fsdecode(variable[11:]).split(os.pathsep))
        try:
            for fd in (entry / "fd").iterdir():
                paths.add(os.readlink(fd))
        except OSError:
            pass
    return {os.path.realpath(p) for p in paths if p}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _own_runtime() -> str:
    """The directory this code runs from: on a server, the runtime shipped there."""
    return os.path.realpath(Path(__file__).resolve().parent.parent)


def find() -> list[dict[str, Any]]:
    """``{kind, path, bytes, detail}`` of everything here that nothing uses."""
    root = home()
    busy = _open_or_run_from()
    found: list[dict[str, Any]] = []

    def unused(kind: str, path: Path, detail: str) -> None:
        found.append({"kind": kind, "path": str(path), "bytes": _size(path), "detail": detail})

    runtimes = root / "runtime"
    for entry in sorted(runtimes.iterdir()) if runtimes.is_dir() else []:
        real = os.path.realpath(entry)
        if real == _own_runtime() or real in busy:
            continue
        if _STAGING_DIR.fullmatch(entry.name):
            unused("runtime", entry, "an interrupted copy of a runtime")
        elif _RUNTIME_DIR.fullmatch(entry.name) and entry.is_dir():
            unused("runtime", entry, "a runtime of another newtlab version, not running")
    used = _used_images(root)
    images = root / "images"
    for directory in sorted(images.iterdir()) if images.is_dir() else []:
        if not (_UPLOAD_DIR.fullmatch(directory.name) and directory.is_dir()):
            continue  # the user's own images: never ours to remove
        for path in sorted(directory.iterdir()):
            real = os.path.realpath(path)
            if real in busy:
                continue
            if _PARTIAL.fullmatch(path.name):
                unused("image", path, "an interrupted upload")
            elif path.is_file() and real not in used:
                unused("image", path, "an uploaded base image no lab here uses")
    return found


def remove(paths: list[str]) -> list[str]:
    """Remove those of ``paths`` that are still unused now; the ones removed."""
    still = {entry["path"] for entry in find()}
    removed = []
    for path in paths:
        if path not in still:
            continue
        target = Path(path)
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
            if target.parent.name != "images" and not any(target.parent.iterdir()):
                target.parent.rmdir()  # the digest directory, now empty
        removed.append(path)
    return removed
