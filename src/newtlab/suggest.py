"""'Did you mean …?' for a name that is not there, from the names that are."""

from __future__ import annotations

from collections.abc import Iterable
from difflib import SequenceMatcher

CUTOFF = 0.5  # r4 is close to r1, eth9 to eth1; sonic-v to sonic-vs


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """`` — did you mean X?`` (or ``X or Y``: the closest first, alike ones in name
    order) when some of ``names`` are close to ``name``; ``""`` when none is."""
    scored = [(SequenceMatcher(None, name, other).ratio(), other) for other in sorted(set(names))]
    close = [other for score, other in sorted(scored, key=lambda s: -s[0]) if score >= CUTOFF]
    return " — did you mean " + " or ".join(close[:3]) + "?" if close else ""
