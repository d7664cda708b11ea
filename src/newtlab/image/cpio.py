"""A minimal writer of the ``newc`` cpio format the kernel unpacks as initramfs.

Written here rather than calling cpio(1) so that entries are owned by root
and timestamped 0 whatever the building user and clock: the same inputs
give the same bytes.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    path: str  # inside the archive, no leading "/"
    mode: int  # full st_mode (type + permissions)
    data: bytes = b""  # file contents, or the target of a symlink
    rdev: tuple[int, int] = (0, 0)  # (major, minor) of a device node


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _header(ino: int, entry: Entry, size: int, name: bytes) -> bytes:
    major, minor = entry.rdev
    fields = [ino, entry.mode, 0, 0, 1, 0, size, 0, 0, major, minor, len(name) + 1, 0]
    return b"070701" + b"".join(f"{f:08X}".encode() for f in fields)


def archive(entries: list[Entry]) -> bytes:
    """The cpio archive of ``entries`` (directories before their contents)."""
    out = bytearray()
    for ino, entry in enumerate(sorted(entries, key=lambda e: e.path), start=1):
        name = entry.path.encode()
        data = entry.data if stat.S_ISREG(entry.mode) or stat.S_ISLNK(entry.mode) else b""
        head = _header(ino, entry, len(data), name) + name + b"\0"
        out += head + _pad(len(head)) + data + _pad(len(data))
    trailer = _header(0, Entry("TRAILER!!!", 0), 0, b"TRAILER!!!") + b"TRAILER!!!\0"
    out += trailer + _pad(len(trailer))
    return bytes(out)
