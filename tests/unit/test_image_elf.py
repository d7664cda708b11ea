"""The image builder's ELF reader, against real binaries of this machine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from newtlab.image import elf

LS = Path(shutil.which("ls") or "/bin/ls")
LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")


def readelf_needed(path: Path) -> tuple[str, ...]:
    out = subprocess.run(
        ["readelf", "-d", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return tuple(
        line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line
    )


def test_a_dynamic_executable_names_its_loader_and_libraries() -> None:
    info = elf.read(LS)
    assert info is not None
    assert info.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert "libc.so.6" in info.needed


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs readelf (binutils)")
@pytest.mark.parametrize("name", ["ls", "sh", "dpkg", "qemu-img"])
def test_needed_matches_readelf(name: str) -> None:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"no {name} here")
    path = Path(found).resolve()
    info = elf.read(path)
    assert info is not None and info.needed == readelf_needed(path)


@pytest.mark.skipif(not LIBC.exists(), reason="no x86-64 multiarch libc here")
def test_a_shared_library_names_what_it_needs() -> None:
    info = elf.read(LIBC)
    assert info is not None and "ld-linux-x86-64.so.2" in info.needed


def test_a_file_that_is_not_elf_is_none(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    assert elf.read(script) is None
    assert elf.parse(b"") is None


def test_a_static_binary_needs_nothing(tmp_path: Path) -> None:
    # An ELF64 header with no program headers, like a kernel module or a static stub.
    header = elf.MAGIC + bytes([2, 1, 1]) + bytes(9) + bytes(48)
    assert elf.parse(header) == elf.Dynamic(None, ())


def test_a_broken_or_foreign_elf_is_an_error() -> None:
    data = LS.read_bytes()
    with pytest.raises(elf.ElfError, match="truncated"):
        elf.parse(data[:100])
    with pytest.raises(elf.ElfError, match="64-bit little-endian"):
        elf.parse(elf.MAGIC + bytes([1, 1]) + data[6:])  # claims 32-bit


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("tags", ["--enable-new-dtags", "--disable-new-dtags"])
def test_the_search_path_is_read_from_runpath_or_rpath(tmp_path: Path, tags: str) -> None:
    # --enable-new-dtags writes DT_RUNPATH (as FRR's daemons have), --disable- the older DT_RPATH.
    source = tmp_path / "main.c"
    source.write_text("int main(void) { return 0; }\n")
    binary = tmp_path / "main"
    subprocess.run(
        ["gcc", "-o", str(binary), str(source), f"-Wl,{tags},-rpath,/opt/a:$ORIGIN/../lib"],
        check=True,
    )
    info = elf.read(binary)
    assert info is not None and info.runpath == ("/opt/a", "$ORIGIN/../lib")
    assert elf.read(LS) is not None and elf.read(LS).runpath == ()  # type: ignore[union-attr]
