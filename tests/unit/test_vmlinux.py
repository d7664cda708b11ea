"""The kernel a platform boots directly: ELF notes, and the ELF out of a bzImage."""

from __future__ import annotations

import lzma
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from newtlab.image import ImageBuildError, elf, host_platform, vmlinux
from newtlab.image.build import KERNEL_CMDLINE, SYSLINUX_CFG

LS = Path(shutil.which("ls") or "/bin/ls")


def _note(name: bytes, kind: int, desc: bytes) -> bytes:
    def padded(data: bytes) -> bytes:
        return data + bytes(-len(data) % 4)

    return struct.pack("<III", len(name), len(desc), kind) + padded(name) + padded(desc)


def _elf_with_notes(notes: bytes) -> bytes:
    """An ELF64 header, one PT_NOTE program header, the notes: what a vmlinux's is."""
    phoff, phentsize = 64, 56
    header = elf.MAGIC + bytes([2, 1, 1]) + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x1000000, phoff, 0, 0, 64, phentsize,
                          1, 0, 0, 0)  # fmt: skip
    offset = phoff + phentsize
    program = struct.pack("<IIQQQQQQ", elf.PT_NOTE, 4, offset, 0, 0, len(notes), len(notes), 4)
    return header + program + notes


def _bzimage(payload: bytes) -> bytes:
    """A stand-in for a bzImage: a setup stub, the xz payload, the decompressor's trailer."""
    return b"MZ" + bytes(510) + lzma.compress(payload, format=lzma.FORMAT_XZ) + b"\xff" * 64


PVH = _note(b"Xen\0", vmlinux.XEN_ELFNOTE_PHYS32_ENTRY, struct.pack("<I", 0x1000000))


def test_a_kernel_with_pvhs_entry_comes_out_whole() -> None:
    kernel = _elf_with_notes(_note(b"GNU\0", 3, b"\x01" * 20) + PVH)
    assert vmlinux.extract(_bzimage(kernel)) == kernel
    assert [(name, kind) for name, kind, _ in elf.notes(kernel)] == [("GNU", 3), ("Xen", 18)]


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs readelf (binutils)")
def test_notes_match_readelf() -> None:
    shown = subprocess.run(["readelf", "-nW", str(LS)], capture_output=True, text=True).stdout
    owners = re.findall(r"^\s+(\S+)\s+0x[0-9a-f]+\s", shown, re.MULTILINE)
    assert owners and [name for name, _, _ in elf.notes(LS.read_bytes())] == owners


@pytest.mark.parametrize(
    ("bzimage", "said"),
    [
        (b"MZ" + bytes(1000), "not xz-compressed"),
        (b"MZ" + vmlinux.XZ_MAGIC + bytes(100), "does not decompress"),
        (_bzimage(_elf_with_notes(_note(b"GNU\0", 3, b"\x01" * 20))), "no PVH entry note"),
        (_bzimage(b"not an ELF at all"), "no PVH entry note"),
    ],
)
def test_a_kernel_qemu_cannot_boot_directly_is_refused(bzimage: bytes, said: str) -> None:
    with pytest.raises(ImageBuildError, match=said):
        vmlinux.extract(bzimage)


def test_the_platform_boots_the_kernel_as_the_disks_boot_loader_does() -> None:
    platform = host_platform()
    assert platform["vm_kernel_cmdline"] == KERNEL_CMDLINE
    assert f"APPEND initrd=initrd.gz {KERNEL_CMDLINE}\n" in SYSLINUX_CFG
    stem = platform["vm_image"].removesuffix(".qcow2")
    assert (platform["vm_kernel"], platform["vm_initrd"]) == (
        f"{stem}.vmlinux",
        f"{stem}.initrd.gz",
    )
