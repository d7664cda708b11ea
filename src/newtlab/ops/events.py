"""Progress events that operations emit and the CLI (or any API user) renders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """``node`` is empty for lab-wide steps; ``phase`` names the step reached."""

    node: str
    phase: str
    detail: str = ""
    failed: bool = False


Progress = Callable[[Event], None]


def no_progress(_: Event) -> None:
    """The default listener: ignore events."""
