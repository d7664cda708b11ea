"""A lab's files on a host: its directories, base images, overlays and logs.

Each VM writes to its own copy-on-write qcow2 overlay; the base is never
modified.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

from . import AgentError, layout
from .fsutil import atomic_write
from .paths import ensure_private_dir, lab_dir

QCOW2_MAGIC = b"QFI\xfb"


def image_problem(image: str) -> str | None:
    """None if ``image`` is a readable qcow2 file, else what is wrong and what to do."""
    path = Path(image)
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except FileNotFoundError:
        hint = (
            " — build it with `newtlab image build host`"
            if path.name == "newtlab-host.qcow2"
            else " — download or build the image, or fix vm_image in platforms.json or the profile"
        )
        return f"vm_image not found: {image}{hint}"
    except OSError as exc:
        return f"cannot read vm_image {image}: {exc.strerror}"
    if magic != QCOW2_MAGIC:
        return (
            f"vm_image {image} is not a qcow2 image — convert it with "
            f"`qemu-img convert -O qcow2 {image} <new>.qcow2`"
        )
    return None


def create_overlay(base: str, overlay: Path) -> None:
    """``qemu-img create -f qcow2 -b <abs base> -F qcow2 <overlay>``.

    The backing path is absolute: qemu-img resolves a relative one against
    the overlay's directory.
    """
    overlay.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        str(Path(base).resolve()),
        "-F",
        "qcow2",
        str(overlay),
    ]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise AgentError("qemu-img not found — install qemu-utils") from None
    if result.returncode != 0:
        raise AgentError(f"creating overlay {overlay} failed: {result.stderr.strip()}")


def prepare_lab(lab: str) -> None:
    """The lab's private directories on this host."""
    directory = ensure_private_dir(lab_dir(lab))
    for sub in layout.HOST_SUBDIRS:
        ensure_private_dir(directory / sub)


def remove_lab(lab: str) -> None:
    """Every file this host keeps for the lab; the directory too, unless more lives there."""
    directory = lab_dir(lab)
    for sub in layout.HOST_SUBDIRS:
        shutil.rmtree(directory / sub, ignore_errors=True)
    for name in layout.HOST_FILES:
        (directory / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the lab's state lives here too on newtlab's machine
        directory.rmdir()


def write_file(lab: str, relative: str, data: bytes) -> None:
    path = lab_dir(lab) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, 0o600)


def read_file(lab: str, relative: str, offset: int = 0) -> bytes | None:
    """A lab file's bytes from ``offset`` on; None if there is no such file."""
    try:
        with (lab_dir(lab) / relative).open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return None
