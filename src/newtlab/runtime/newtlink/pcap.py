"""Optional capture of a link's frames to a pcap file (off unless configured)."""

from __future__ import annotations

import struct
import threading
import time
from typing import BinaryIO

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_LENGTH = struct.Struct(">I")
LINKTYPE_ETHERNET = 1


class PcapWriter:
    """Appends whole frames (both directions of one link) to a pcap file."""

    def __init__(self, path: str) -> None:
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - lives as long as the bridge
        self._file.write(_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        self._lock = threading.Lock()

    def write_frames(self, data: memoryview) -> None:
        """``data`` holds whole QEMU-framed frames: 4-byte length + frame, repeated."""
        now = time.time()
        seconds, micros = int(now), int((now % 1) * 1_000_000)
        with self._lock:
            pos = 0
            while pos < len(data):
                (length,) = _LENGTH.unpack_from(data, pos)
                self._file.write(_RECORD.pack(seconds, micros, length, length))
                self._file.write(data[pos + 4 : pos + 4 + length])
                pos += 4 + length
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()
