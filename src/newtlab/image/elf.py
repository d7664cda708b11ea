"""Just enough of ELF64 to know what a binary needs to run: its dynamic loader
(``PT_INTERP``), the shared libraries it names (``DT_NEEDED``) and where it
asks the loader to look for them first (``DT_RUNPATH``, or the older ``DT_RPATH``).

Pure Python so that building the guest needs no binutils: the image builder
follows these names through the unpacked Debian packages and copies exactly
the libraries the guest's binaries need.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
DT_NULL, DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 1, 5, 15, 29
_HEADER = struct.Struct("<16xHHIQQQIHHHHHH")  # e_type .. e_shstrndx after e_ident
_PHDR = struct.Struct(
    "<IIQQQQQQ"
)  # p_type p_flags p_offset p_vaddr p_paddr p_filesz p_memsz p_align
_DYN = struct.Struct("<qQ")  # d_tag d_val


class ElfError(ValueError):
    """A file that starts like ELF but is not a well-formed 64-bit little-endian one."""


@dataclass(frozen=True)
class Dynamic:
    interpreter: str | None  # PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2; None if static
    needed: tuple[str, ...]  # DT_NEEDED sonames, in the file's order
    # DT_RUNPATH (else DT_RPATH) directories, in order, $ORIGIN unexpanded; FRR's
    # daemons find libfrr in /usr/lib/x86_64-linux-gnu/frr this way.
    runpath: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Segment:
    type: int
    offset: int
    vaddr: int
    filesz: int


def _unpack(layout: struct.Struct, data: bytes, offset: int) -> tuple[int, ...]:
    if offset < 0 or offset + layout.size > len(data):
        raise ElfError(f"truncated: {layout.size} bytes at offset {offset} past the end")
    return layout.unpack_from(data, offset)


def _segments(data: bytes) -> list[_Segment]:
    header = _unpack(_HEADER, data, 0)
    phoff, phentsize, phnum = header[4], header[8], header[9]
    if phnum and phentsize < _PHDR.size:
        raise ElfError(f"program header entries of {phentsize} bytes")
    segments = []
    for i in range(phnum):
        p_type, _, offset, vaddr, _, filesz, *_ = _unpack(_PHDR, data, phoff + i * phentsize)
        segments.append(_Segment(p_type, offset, vaddr, filesz))
    return segments


def _string(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    if offset < 0 or offset >= len(data) or end < 0:
        raise ElfError(f"no string at offset {offset}")
    return data[offset:end].decode("utf-8", "surrogateescape")


def _file_offset(segments: list[_Segment], vaddr: int) -> int:
    """Dynamic entries hold addresses: the file offset the loaded segment maps there."""
    for seg in segments:
        if seg.type == PT_LOAD and seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
            return vaddr - seg.vaddr + seg.offset
    raise ElfError(f"address {vaddr:#x} is in no loaded segment")


def _dynamic(data: bytes, segments: list[_Segment]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The DT_NEEDED names and the search path (DT_RUNPATH, else DT_RPATH)."""
    dynamic = next((s for s in segments if s.type == PT_DYNAMIC), None)
    if dynamic is None:
        return (), ()  # statically linked (or not an executable at all, e.g. a kernel module)
    names: list[int] = []
    paths: dict[int, int] = {}
    strtab = None
    for offset in range(dynamic.offset, dynamic.offset + dynamic.filesz, _DYN.size):
        tag, value = _unpack(_DYN, data, offset)
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            names.append(value)
        elif tag in (DT_RPATH, DT_RUNPATH):
            paths[tag] = value
        elif tag == DT_STRTAB:
            strtab = value
    if (names or paths) and strtab is None:
        raise ElfError("DT_NEEDED or DT_RUNPATH entries but no DT_STRTAB")
    base = _file_offset(segments, strtab) if strtab is not None else 0
    # The loader ignores DT_RPATH when DT_RUNPATH is there.
    path = paths.get(DT_RUNPATH, paths.get(DT_RPATH))
    runpath = _string(data, base + path).split(":") if path is not None else []
    return tuple(_string(data, base + name) for name in names), tuple(p for p in runpath if p)


def parse(data: bytes) -> Dynamic | None:
    """The loader and libraries an ELF file needs; None for a file that is not ELF."""
    if not data.startswith(MAGIC):
        return None
    if len(data) < 6 or data[4] != ELFCLASS64 or data[5] != ELFDATA2LSB:
        raise ElfError("not a 64-bit little-endian ELF file")
    segments = _segments(data)
    interp = next((s for s in segments if s.type == PT_INTERP), None)
    interpreter = _string(data, interp.offset) if interp is not None else None
    needed, runpath = _dynamic(data, segments)
    return Dynamic(interpreter, needed, runpath)


def notes(data: bytes) -> list[tuple[str, int, bytes]]:
    """Every ``(name, type, descriptor)`` of the file's PT_NOTE segments."""
    found = []
    for seg in _segments(data):
        if seg.type != PT_NOTE:
            continue
        offset, end = seg.offset, seg.offset + seg.filesz
        while offset + 12 <= end:
            namesz, descsz, kind = struct.unpack_from("<III", data, offset)
            name_at = offset + 12
            desc_at = name_at + (namesz + 3) // 4 * 4
            name = data[name_at : name_at + namesz].rstrip(b"\0").decode(errors="replace")
            found.append((name, kind, data[desc_at : desc_at + descsz]))
            offset = desc_at + (descsz + 3) // 4 * 4
    return found


def read(path: Path) -> Dynamic | None:
    """``parse`` of the file at ``path``."""
    return parse(Path(path).read_bytes())
