"""Link impairment, frame by frame: delay with jitter, loss, rate, corruption, duplication.

``Impairment`` is what one direction of a link is asked to do; ``Schedule``
decides, for each frame as it arrives, when it leaves (or that it does not):
pure arithmetic on the arrival time and a random source, so it is tested
with a seeded one. The rules, as a user of ``tc netem`` would expect them:

* frames leave in the order they came (a jittered frame never overtakes the
  one before it: its departure is at least the previous one's);
* ``rate`` serialises frames one after the other at that many bits per
  second; frames waiting for the wire beyond ``limit`` are dropped (a
  bounded queue, like a switch port's);
* ``loss`` drops, ``duplicate`` sends a frame twice, ``corrupt`` flips one
  random bit of it — each with its own probability.

Frames always stay whole: impairment happens between whole frames.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import asdict, dataclass, fields
from typing import Any

QUEUE_LIMIT = 1000  # frames waiting for the wire (tc's default limit)


@dataclass(frozen=True)
class Impairment:
    delay: float = 0.0  # seconds added to every frame
    jitter: float = 0.0  # ± seconds, uniform, on top of the delay
    loss: float = 0.0  # probability that a frame is dropped
    rate: int = 0  # bits per second; 0: as fast as the frames come
    corrupt: float = 0.0  # probability that one bit of a frame is flipped
    duplicate: float = 0.0  # probability that a frame is sent twice
    limit: int = QUEUE_LIMIT  # frames queued for the wire at most, with a rate

    def __post_init__(self) -> None:
        for name in ("loss", "corrupt", "duplicate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a fraction between 0 and 1")
        if self.delay < 0 or self.jitter < 0 or self.rate < 0 or self.limit < 1:
            raise ValueError("delay, jitter and rate cannot be negative, limit must be ≥ 1")

    @property
    def active(self) -> bool:
        return self != Impairment(limit=self.limit)

    def to_json(self) -> dict[str, Any]:
        """Only the fields that differ from no impairment."""
        default = Impairment()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Impairment:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown impairment fields: {', '.join(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class Verdict:
    """What becomes of one frame: the times it leaves (none: dropped), and whether
    the bit at ``flip`` (a bit index into the frame) is flipped first."""

    departures: tuple[float, ...]
    flip: int = -1


class Schedule:
    """Departure times for one direction's frames, in arrival order."""

    def __init__(self, impairment: Impairment, rng: random.Random | None = None) -> None:
        self.impairment = impairment
        self.rng = rng or random.Random()
        self.wire_free = 0.0  # when the wire (at ``rate``) has sent what is queued
        self.last = 0.0  # the latest departure given: order is kept
        self.queued: deque[float] = deque()  # when each frame queued for the wire is sent

    def admit(self, now: float, length: int) -> Verdict:
        """The fate of a frame of ``length`` bytes arriving at ``now`` (seconds)."""
        imp, rng = self.impairment, self.rng
        if imp.loss and rng.random() < imp.loss:
            return Verdict(())
        sent = now
        if imp.rate:
            while self.queued and self.queued[0] <= now:
                self.queued.popleft()
            if len(self.queued) >= imp.limit:
                return Verdict(())  # the queue is full: tail drop
            sent = max(now, self.wire_free) + length * 8 / imp.rate
            self.wire_free = sent
            self.queued.append(sent)
        spread = rng.uniform(-imp.jitter, imp.jitter) if imp.jitter else 0.0
        leave = max(sent + imp.delay + spread, self.last, now)
        self.last = leave
        copies = (leave, leave) if imp.duplicate and rng.random() < imp.duplicate else (leave,)
        flip = rng.randrange(length * 8) if imp.corrupt and rng.random() < imp.corrupt else -1
        return Verdict(copies, flip)
