"""Capture of a link's frames to a pcap file: off unless configured, free when off.

The pumps hold each read's whole frames in a buffer anyway, so capturing is
one ``write`` per frame from that buffer; a link without capture pays one
attribute check per read. Both directions of a link go to one file, in the
order the bridge reads them (dropped frames included: they were on the wire).
"""

from __future__ import annotations

import struct
import threading
import time
from typing import BinaryIO

from .frames import HEADER, HEADER_SIZE

_GLOBAL = struct.Struct("<IHHiIII")  # magic, version 2.4, tz, sigfigs, snaplen, linktype
_RECORD = struct.Struct("<IIII")  # seconds, microseconds, captured length, original length
MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144


class PcapWriter:
    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - open as long as the bridge
        self._file.write(_GLOBAL.pack(MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        self._file.flush()
        self._lock = threading.Lock()  # the two directions write from two threads

    def write(self, data: memoryview) -> None:
        """Record each frame of ``data`` (whole QEMU-framed frames, back to back)."""
        now = time.time()
        seconds, micros = int(now), int((now % 1) * 1_000_000)
        unpack, pack = HEADER.unpack_from, _RECORD.pack
        with self._lock:
            if self._file.closed:
                return
            write = self._file.write
            pos, end = 0, len(data)
            while pos < end:
                (length,) = unpack(data, pos)
                start = pos + HEADER_SIZE
                write(pack(seconds, micros, length, length))
                write(data[start : start + length])
                pos = start + length
            self._file.flush()  # so a reader following the file sees frames as they pass

    def close(self) -> None:
        with self._lock:
            self._file.close()
