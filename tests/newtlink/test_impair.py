"""The impairment schedule: order kept under delay and jitter; loss, rate, duplication and
corruption statistics within tolerance, with a seeded random source."""

from __future__ import annotations

import random
import statistics

import pytest

from newtlab.newtlink.config import parse
from newtlab.newtlink.impair import Impairment, Schedule
from newtlab.newtlink.link import Link


def run(imp: Impairment, frames: int, gap: float, length: int = 1500, seed: int = 7):
    schedule = Schedule(imp, random.Random(seed))
    return [(i * gap, schedule.admit(i * gap, length)) for i in range(frames)]


def test_delay_with_jitter_keeps_order_even_when_frames_are_dense() -> None:
    verdicts = run(Impairment(delay=0.020, jitter=0.005), 20000, 0.0005)
    departures = [v.departures[0] for _, v in verdicts]
    assert departures == sorted(departures)  # never overtaken
    delays = [v.departures[0] - t for t, v in verdicts]
    # a frame held back to keep order waits a little longer, never beyond delay + jitter
    assert min(delays) >= 0.015 - 1e-9 and max(delays) <= 0.025 + 1e-9
    assert 0.020 < statistics.mean(delays) < 0.025


def test_sparse_frames_get_the_delay_and_the_jitter_asked_for() -> None:
    verdicts = run(Impairment(delay=0.020, jitter=0.005), 5000, 0.011)  # gaps > 2 × jitter
    delays = [v.departures[0] - t for t, v in verdicts]
    assert statistics.mean(delays) == pytest.approx(0.020, abs=0.0003)
    assert statistics.pstdev(delays) == pytest.approx(0.005 / 3**0.5, rel=0.05)  # uniform


def test_a_plain_delay_is_exact() -> None:
    for t, verdict in run(Impairment(delay=0.060), 100, 0.01):
        assert verdict.departures == (pytest.approx(t + 0.060),)


@pytest.mark.parametrize("loss", [0.01, 0.1, 0.5])
def test_loss_drops_that_fraction(loss: float) -> None:
    verdicts = run(Impairment(loss=loss), 100000, 0.00001)
    dropped = sum(1 for _, v in verdicts if not v.departures)
    assert dropped / len(verdicts) == pytest.approx(loss, rel=0.08)


def test_full_loss_drops_everything() -> None:
    assert all(not v.departures for _, v in run(Impairment(loss=1.0), 1000, 0.001))


def test_rate_shapes_to_the_rate_and_drops_beyond_the_queue() -> None:
    # 1,500-byte frames offered at 200 Mbit/s for one second into a 100 Mbit/s wire.
    gap = 1500 * 8 / 200e6
    verdicts = run(Impairment(rate=100_000_000), int(1 / gap), gap)
    sent = [v.departures[0] for _, v in verdicts if v.departures]
    assert sent == sorted(sent)
    carried = len(sent) * 1500 * 8 / (sent[-1] - verdicts[0][0])
    assert carried == pytest.approx(100e6, rel=0.02)
    dropped = len(verdicts) - len(sent)
    # what one second at 100 Mbit/s carries, plus a full queue after it, is sent
    assert len(sent) == pytest.approx(100e6 / (1500 * 8) + 1000, abs=3)
    assert dropped > 0
    # the queue is bounded: nothing waits longer than 1,000 frames' serialisation
    waits = [v.departures[0] - t for t, v in verdicts if v.departures]
    assert max(waits) <= 1000 * 1500 * 8 / 100e6 + 1e-9


def test_rate_below_the_offered_load_drops_nothing() -> None:
    verdicts = run(Impairment(rate=100_000_000), 10000, 1500 * 8 / 50e6)
    assert all(v.departures for _, v in verdicts)


def test_duplicate_and_corrupt_happen_at_their_rates_on_valid_bits() -> None:
    verdicts = run(Impairment(duplicate=0.01, corrupt=0.02), 100000, 0.0001, length=100)
    twice = sum(1 for _, v in verdicts if len(v.departures) == 2)
    flipped = [v.flip for _, v in verdicts if v.flip >= 0]
    assert twice / len(verdicts) == pytest.approx(0.01, rel=0.1)
    assert len(flipped) / len(verdicts) == pytest.approx(0.02, rel=0.1)
    assert all(0 <= bit < 800 for bit in flipped)


def test_settings_round_trip_and_are_checked() -> None:
    imp = Impairment(delay=0.02, loss=0.01, rate=10_000_000)
    assert imp.active and not Impairment().active
    assert imp.to_json() == {"delay": 0.02, "loss": 0.01, "rate": 10_000_000}
    assert Impairment.from_json(imp.to_json()) == imp
    with pytest.raises(ValueError, match="loss"):
        Impairment(loss=1.5)
    with pytest.raises(ValueError, match="unknown impairment fields: lag"):
        Impairment.from_json({"lag": 1})


def test_a_link_keeps_a_directions_shaper_while_its_impairment_stays() -> None:
    """Setting one direction must not drop the frames the other holds back."""
    config = parse({"links": [{"a": "r1:e1", "z": "r2:e1", "a_port": 1, "z_port": 2}]})
    link = Link(config.links[0])
    try:
        link.apply({"a": {"delay": 0.5}})
        held = link.shapers["a"]
        link.apply({"a": {"delay": 0.5}, "z": {"loss": 0.1}})
        assert link.shapers["a"] is held and link.shapers["z"] is not None
        link.apply({"a": {"delay": 0.2}, "z": {"loss": 0.1}})
        assert link.shapers["a"] is not held
        assert link.shapers["a"].impairment == Impairment(delay=0.2)  # type: ignore[union-attr]
        link.apply({})
        assert link.shapers == {"a": None, "z": None} and link.settings() == {}
    finally:
        link.close()
