"""ISO 9660 images holding a few files: config drives and NoCloud seeds (pycdlib, in memory).

Each file gets three names: the ISO 9660 one (upper case, ``;1``), which old
readers see, and its exact name as Rock Ridge (Linux) and Joliet (Windows,
most NOS loaders) records, so a NOS that looks for ``iosxe_config.txt`` or
``config/init-cfg.txt`` finds it whatever it reads.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

import pycdlib

_NOT_D_CHAR = re.compile(r"[^A-Z0-9_]")


def _iso9660_name(name: str, directory: bool) -> str:
    """``init-cfg.txt`` → ``INIT_CFG.TXT;1`` (level 3: at most 30 characters); a
    directory has no extension or version."""
    upper = name.upper()
    if directory:
        return _NOT_D_CHAR.sub("_", upper)[:30] or "_"
    stem, dot, suffix = upper.rpartition(".")
    if not dot:
        stem, suffix = upper, ""
    return f"{_NOT_D_CHAR.sub('_', stem)[:26] or '_'}.{_NOT_D_CHAR.sub('_', suffix)[:3]};1"


def build_iso(files: Mapping[str, bytes], label: str, directories: Iterable[str] = ()) -> bytes:
    """An ISO image with ``files`` (``path/in/iso`` → content), empty ``directories``
    besides, and volume label ``label``."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=label)
    made: dict[PurePosixPath, str] = {PurePosixPath("/"): ""}

    def directory(path: PurePosixPath) -> None:
        for parent in [*reversed(path.parents), path]:
            if parent not in made:
                iso_path = f"{made[parent.parent]}/{_iso9660_name(parent.name, True)}"
                iso.add_directory(iso_path, rr_name=parent.name, joliet_path=str(parent))
                made[parent] = iso_path

    for name in sorted(directories):
        directory(PurePosixPath("/" + name.strip("/")))
    for path, data in sorted(files.items()):
        parts = PurePosixPath("/" + path.lstrip("/"))
        directory(parts.parent)
        iso_path = f"{made[parts.parent]}/{_iso9660_name(parts.name, False)}"
        iso.add_fp(
            io.BytesIO(data), len(data), iso_path, rr_name=parts.name, joliet_path=str(parts)
        )
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read_iso(image: bytes) -> tuple[str, dict[str, bytes]]:
    """The volume label and every file by its Rock Ridge path (for checks and tests)."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        label = iso.pvd.volume_identifier.decode().rstrip()
        files: dict[str, bytes] = {}
        for root, _, names in iso.walk(rr_path="/"):
            for name in names:
                path = f"{root.rstrip('/')}/{name}"
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, rr_path=path)
                files[path.lstrip("/")] = out.getvalue()
        return label, files
    finally:
        iso.close()
