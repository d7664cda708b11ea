"""A graph drawn in one of its formats, once or again and again into a file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..agent.fsutil import atomic_write
from .dot import to_dot
from .graph import Graph
from .html import to_html
from .mermaid import to_mermaid

FORMATS = ("mermaid", "dot", "html")


def draw(graph: Graph, fmt: str) -> str:
    """``graph`` as mermaid, dot or a self-contained html page (stamped with the time)."""
    if fmt == "html":
        return to_html(graph, time.strftime("%Y-%m-%d %H:%M:%S"))
    return {"mermaid": to_mermaid, "dot": to_dot}[fmt](graph)


def keep_drawing(path: Path, drawing: Callable[[], str], every: float | None) -> None:
    """Write ``drawing()`` into ``path`` — whole, so a browser reloading it never reads
    half — and with ``every``, again every that many seconds until Ctrl-C."""
    while True:
        atomic_write(path, drawing().encode())
        if every is None:
            return
        try:
            time.sleep(every)
        except KeyboardInterrupt:
            return
