"""Link impairments as users write them ("20ms", "1%", "100mbit"), checked and converted.

The same words are taken by ``newtlab link set`` and by ``topology.json``'s
``newtlab.links``; what comes out is what the bridge's ``Impairment`` takes:
seconds, fractions and bits per second.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from ..errors import SpecError, SpecErrors
from ..spec.models import LinkSettingsSpec
from .model import LinkPlan, LinkSettings

Direction = Literal["both", "out", "in"]
FIELDS = ("delay", "jitter", "loss", "rate", "corrupt", "duplicate")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(us|µs|ms|s)?")
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)?", re.IGNORECASE)
_SECONDS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, None: 1e-3}
_BITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, None: 1}


class ImpairmentError(ValueError):
    """A value that is not what its field takes; the message says what is."""


def _shown(text: str) -> str:
    value = str(text)
    return repr(value if len(value) <= 30 else value[:30] + "…")


def duration(text: str, field: str) -> float:
    """``20ms``, ``1.5s``, ``500us`` (a bare number is milliseconds) → seconds."""
    match = _DURATION.fullmatch(str(text).strip())
    if not match:
        raise ImpairmentError(f"{field}: {text!r} is not a duration (e.g. 20ms, 1.5s, 500us)")
    seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if not math.isfinite(seconds):
        raise ImpairmentError(f"{field}: {_shown(text)} is too long a duration")
    return seconds


def fraction(text: str, field: str) -> float:
    """``1%`` or ``0.5%`` → 0.01, 0.005; a value must be between 0 and 100 %."""
    value = str(text).strip()
    if not value.endswith("%"):
        raise ImpairmentError(f"{field}: {text!r} must be a percentage (e.g. 1%, 0.1%)")
    try:
        number = float(value[:-1])
    except ValueError:
        raise ImpairmentError(f"{field}: {text!r} is not a percentage") from None
    if not 0 <= number <= 100:
        raise ImpairmentError(f"{field}: {text!r} is not between 0% and 100%")
    return number / 100


def rate(text: str, field: str = "rate") -> int:
    """``100mbit``, ``1gbit``, ``512kbit`` → bits per second (SI units, as tc)."""
    value = str(text).strip()
    if value.lower().endswith(("bps", "b/s")):
        raise ImpairmentError(f"{field}: {text!r} is ambiguous — write bits: 100mbit, 1gbit")
    match = _RATE.fullmatch(value)
    if not match:
        raise ImpairmentError(f"{field}: {text!r} is not a rate (e.g. 100mbit, 1gbit)")
    number = float(match.group(1)) * _BITS[(match.group(2) or "").lower() or None]
    if not math.isfinite(number):
        raise ImpairmentError(f"{field}: {_shown(text)} is too large a rate")
    bits = int(number)
    if bits < 8000:
        raise ImpairmentError(f"{field}: {text!r} is below 8kbit, slower than any link")
    return bits


def impairment(values: dict[str, Any]) -> dict[str, Any]:
    """The bridge's impairment fields from the user's (absent or empty ones left out)."""
    converted: dict[str, Any] = {}
    for field, value in values.items():
        if value in (None, ""):
            continue
        if field in ("delay", "jitter"):
            converted[field] = duration(value, field)
        elif field in ("loss", "corrupt", "duplicate"):
            converted[field] = fraction(value, field)
        elif field == "rate":
            converted[field] = rate(value)
        else:
            raise ImpairmentError(f"{field}: not an impairment ({', '.join(FIELDS)})")
    return converted


def describe(settings: dict[str, Any]) -> str:
    """``delay 20ms ±5ms, loss 1%, rate 100mbit`` for one direction's impairment."""
    parts = []
    if "delay" in settings:
        jitter = f" ±{settings['jitter'] * 1000:g}ms" if settings.get("jitter") else ""
        parts.append(f"delay {settings['delay'] * 1000:g}ms{jitter}")
    for field in ("loss", "corrupt", "duplicate"):
        if field in settings:
            parts.append(f"{field} {settings[field] * 100:g}%")
    if "rate" in settings:
        parts.append(f"rate {settings['rate'] / 1e6:g}mbit")
    return ", ".join(parts)


def read_sides(end_side: str, direction: Direction) -> list[str]:
    """The sides whose frames an impairment set at ``end_side`` applies to: ``out`` is
    what that end sends (read from its side), ``in`` what it receives."""
    far = "z" if end_side == "a" else "a"
    return {"out": [end_side], "in": [far], "both": [end_side, far]}[direction]


def with_impairment(
    current: LinkSettings, end_side: str, direction: Direction, values: dict[str, Any]
) -> LinkSettings:
    """``current`` with ``values`` (bridge units) set on the chosen directions; what
    was set there before and is not named stays, and a value set to 0 goes."""
    update = {}
    for side in read_sides(end_side, direction):
        merged = {k: v for k, v in {**getattr(current, side), **values}.items() if v}
        if merged.get("jitter") and not merged.get("delay"):
            raise ImpairmentError("jitter: give a delay too (jitter varies the delay)")
        update[side] = merged
    return current.model_copy(update=update)


def without_impairment(current: LinkSettings) -> LinkSettings:
    return LinkSettings(down=current.down)


def plan_link_settings(
    wanted: dict[str, LinkSettingsSpec], links: list[LinkPlan], topology_file: str
) -> list[LinkPlan]:
    """``links`` with the settings ``newtlab.links`` gives them; every problem at once."""
    ends = {end: (i, side) for i, link in enumerate(links)
            for end, side in ((link.a, "a"), (link.z, "z"))}  # fmt: skip
    settings = [link.settings for link in links]
    errors = []
    for end, spec in wanted.items():
        where = f"newtlab.links.{end}"
        if end not in ends:
            errors.append(SpecError(topology_file, where, f"no link ends at {end!r}",
                                    "name a linked interface as DEVICE:INTERFACE"))  # fmt: skip
            continue
        i, side = ends[end]
        try:
            values = impairment(spec.model_dump(include=set(FIELDS)))
            updated = with_impairment(settings[i], side, spec.direction, values)
        except ImpairmentError as exc:
            field, _, problem = str(exc).partition(": ")
            errors.append(SpecError(topology_file, f"{where}.{field}", problem,
                                    "units: see docs/shaping.md, 'Impairment'"))  # fmt: skip
            continue
        settings[i] = updated.model_copy(update={"down": updated.down or spec.down})
    if errors:
        raise SpecErrors(errors)
    return [
        link.model_copy(update={"settings": s}) for link, s in zip(links, settings, strict=True)
    ]
