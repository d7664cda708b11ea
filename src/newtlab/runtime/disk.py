"""Copy-on-write overlays: each VM writes to its own qcow2, the base is never modified."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import RuntimeFailure

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
        raise RuntimeFailure("qemu-img not found — install qemu-utils") from None
    if result.returncode != 0:
        raise RuntimeFailure(f"creating overlay {overlay} failed: {result.stderr.strip()}")
