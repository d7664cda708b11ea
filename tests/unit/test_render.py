"""What tables and progress look like where users read them: 80 columns, piped."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from newtlab.ops.events import Event
from newtlab.ops.logs import QueryFilter
from newtlab.ops.status import HostView, lab_status
from newtlab.render import ProgressView, print_status
from specfactory import deployed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_status_at_80_columns_wraps_and_never_cuts() -> None:
    state = deployed(EXAMPLES / "hosts2", status="running")
    console = Console(width=80, file=io.StringIO(), record=True)
    print_status(console, lab_status(state, {"local": HostView()}))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "10.0.1.10/24," in text and "10.0.2.1/31," in text  # whole addresses


def test_progress_piped_reads_as_sentences() -> None:
    out = io.StringIO()
    with ProgressView(Console(file=out, width=80), {"r1": "local"}) as view:
        view(Event("r1", "ready", "in 12.7 s"))
    assert out.getvalue().rstrip().endswith("r1: ready in 12.7 s")


def test_logs_leave_out_terminal_queries_even_cut_between_reads() -> None:
    clean = QueryFilter()
    chunks = [b"r1# \x1b[6", b"nls\r\n\x1b", b"[6n\x1b[0m# ", b"\x1b["]
    shown = b"".join(clean(chunk) for chunk in chunks) + clean(b"", last=True)
    assert shown == b"r1# ls\r\n\x1b[0m# \x1b["  # colours stay; a dangling ESC[ at the end too
