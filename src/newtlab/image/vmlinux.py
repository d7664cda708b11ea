"""The kernel as QEMU loads it directly: the ELF inside Debian's compressed bzImage.

A bzImage decompresses itself before the kernel runs: Debian's kernel is xz
compressed, and under TCG that costs ~7 s of CPU at every boot (a third of the
host image's boot). The ELF inside carries the Xen PVH entry note, so QEMU
(``-kernel``) and libvirt (``<os><kernel>``) start it as it is, with no
decompression and no boot loader.
"""

from __future__ import annotations

import lzma

from . import elf
from .errors import ImageBuildError

XZ_MAGIC = b"\xfd7zXZ\x00"
XEN_ELFNOTE_PHYS32_ENTRY = 18  # the PVH entry point QEMU boots an ELF kernel by


def extract(bzimage: bytes) -> bytes:
    """The uncompressed kernel ELF of an xz-compressed bzImage, checked to have PVH's
    entry note."""
    start = bzimage.find(XZ_MAGIC)
    if start < 0:
        raise ImageBuildError("the kernel is not xz-compressed: no vmlinux to extract from it")
    try:
        # The payload is followed by the decompressor's trailer: read one stream only.
        kernel = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(bzimage[start:])
    except lzma.LZMAError as exc:
        raise ImageBuildError(f"the kernel's xz payload does not decompress: {exc}") from None
    try:
        notes = elf.notes(kernel) if kernel.startswith(elf.MAGIC) else []
    except elf.ElfError as exc:
        raise ImageBuildError(f"the kernel's payload is not a well-formed ELF: {exc}") from None
    if not any(name == "Xen" and kind == XEN_ELFNOTE_PHYS32_ENTRY for name, kind, _ in notes):
        raise ImageBuildError(
            "the kernel has no PVH entry note (CONFIG_PVH): QEMU cannot boot it directly"
        )
    return kernel
