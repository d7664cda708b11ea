"""One impaired direction of a link: frames wait in a queue for the departure their
``Schedule`` gave them, and a thread of their own sends them then.

A direction without impairment has no shaper at all: its pump sends straight
from its buffer, as before. Frames here are copied out one by one (a schedule
decides per frame), which costs a copy that only impaired links pay. However
fast frames come, at most ``MAX_QUEUED`` wait here (a delayed flood would
otherwise take all memory).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable

from .frames import HEADER, HEADER_SIZE
from .impair import Impairment, Schedule

MAX_QUEUED = 1 << 16  # frames held for later, whatever the settings: beyond, drop
Send = Callable[[bytes], bool]  # send one framed frame to the other side; False if it is away


class Shaper:
    def __init__(self, impairment: Impairment, send: Send, name: str) -> None:
        self.impairment = impairment
        self.schedule = Schedule(impairment, random.Random())
        self.send = send
        self.queue: deque[tuple[float, bytes]] = deque()  # departures never decrease
        self.ready = threading.Condition()
        self.stopped = False
        self.sent_frames = self.sent_bytes = 0
        self.dropped_frames = self.dropped_bytes = 0  # by loss, a full queue, or no receiver
        self.thread = threading.Thread(target=self._run, name=f"shaper {name}", daemon=True)
        self.thread.start()

    def submit(self, data: memoryview) -> None:
        """Take the whole frames of ``data`` (QEMU-framed, back to back)."""
        now = time.monotonic()
        admitted: list[tuple[float, bytes]] = []
        pos, end = 0, len(data)
        while pos < end:
            (length,) = HEADER.unpack_from(data, pos)
            stop = pos + HEADER_SIZE + length
            verdict = self.schedule.admit(now, length)
            if not verdict.departures or len(self.queue) + len(admitted) >= MAX_QUEUED:
                self.dropped_frames += 1
                self.dropped_bytes += stop - pos
            else:
                frame = bytearray(data[pos:stop])
                if verdict.flip >= 0:
                    frame[HEADER_SIZE + verdict.flip // 8] ^= 1 << (verdict.flip % 8)
                admitted += [(when, bytes(frame)) for when in verdict.departures]
            pos = stop
        if admitted:
            with self.ready:
                self.queue.extend(admitted)
                self.ready.notify()

    def _run(self) -> None:
        while True:
            with self.ready:
                while not self.stopped and not self.queue:
                    self.ready.wait()
                if self.stopped:
                    return
                when, frame = self.queue[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self.ready.wait(wait)  # a stop (or nothing) wakes it; check again
                    continue
                self.queue.popleft()
            if self.send(frame):
                self.sent_frames += 1
                self.sent_bytes += len(frame)
            else:
                self.dropped_frames += 1
                self.dropped_bytes += len(frame)

    def stop(self) -> None:
        """Stop sending; frames still queued are dropped (the link was re-set or closed)."""
        with self.ready:
            self.stopped = True
            self.ready.notify()
        self.thread.join(timeout=2)
