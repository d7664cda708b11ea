"""The QEMU ``-netdev socket`` stream: a 4-byte big-endian length, then that many bytes.

``walk`` finds where the last whole frame in a buffer ends. It is the only
per-frame Python work on the data path, so runs of equal-length frames (bulk
TCP is mostly MTU-sized frames one way and ACKs the other) are checked with
strided byte slices at C speed instead of one ``unpack`` per frame.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size
# QEMU's socket netdev reads frames into a 4096 + 65536 byte buffer; anything
# longer is not a QEMU stream, and its sender can never be resynchronised.
MAX_FRAME = 4096 + 65536

if TYPE_CHECKING:  # only annotations use it, so Python 3.9 never evaluates the union
    import mmap

    # Buffers whose extended slices are bytes (a memoryview's would not be).
    Buffer = mmap.mmap | bytes | bytearray

_unpack = HEADER.unpack_from


class CorruptStream(Exception):
    """A length header larger than any QEMU frame."""

    def __init__(self, length: int) -> None:
        super().__init__(f"frame length {length} exceeds {MAX_FRAME}")
        self.length = length


def walk(buf: Buffer, end: int) -> tuple[int, int]:
    """``(whole, frames)``: ``buf[:whole]`` holds exactly ``frames`` complete frames.

    ``buf[whole:end]`` is the start of an incomplete frame (possibly only part
    of its header). Raises CorruptStream on an impossible length.
    """
    if HEADER_SIZE <= end <= HEADER_SIZE + MAX_FRAME and HEADER_SIZE + _unpack(buf, 0)[0] == end:
        return end, 1  # one whole frame, the usual read at low rates: skip the loop
    pos = frames = 0
    last = -1  # length of the previous frame, to spot runs
    probe = 16  # how many frames a run check looks ahead; grows while runs pay off
    cooldown = 0  # frames to walk one by one after a run check that did not pay
    while end - pos >= HEADER_SIZE:
        (length,) = _unpack(buf, pos)
        if length > MAX_FRAME:
            raise CorruptStream(length)
        stride = HEADER_SIZE + length
        if pos + stride > end:
            break
        if length == last and not cooldown:
            # Count how many of the next frames have this same header, without
            # a Python step per frame: each of the 4 header bytes, taken every
            # ``stride`` bytes, must repeat; lstrip measures how far it does.
            count = min((end - pos) // stride, probe)
            limit = pos + count * stride
            run = count
            for j in range(HEADER_SIZE):
                column = buf[pos + j : limit : stride]
                run = min(run, count - len(column.lstrip(column[:1])))
            pos += run * stride
            frames += run
            probe = min(probe * 2, 1 << 16) if run == count else 16
            if run < 8:  # a check costs about as much as walking eight frames
                cooldown = 16
            continue
        if cooldown:
            cooldown -= 1
        last = length
        pos += stride
        frames += 1
    return pos, frames
