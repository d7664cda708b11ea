"""One palette for every drawing: a device's fill by its state, a link's by its own."""

from __future__ import annotations

STATUS_FILL = {
    "running": "#c8e6c9",
    "starting": "#fff3c4",
    "stopped": "#e0e0e0",
    "exited": "#ffcdd2",
    "failed": "#ffcdd2",
    "pending": "#eeeeee",
    "unknown": "#eeeeee",
}
PLANNED_FILL = "#e3f2fd"  # drawn from a plan: no state
LINK_UP = "#2e7d32"
LINK_DOWN = "#c62828"
LINK_PLANNED = "#546e7a"


def fill(status: str) -> str:
    return STATUS_FILL.get(status, PLANNED_FILL) if status else PLANNED_FILL
