"""Readiness as data: a node is ready when each of its platform's probes passes, in order.

The phase a node waits in is saved, so ``status`` shows the probe too.
"""

from __future__ import annotations

import asyncio
import re
import time

from ..agent import layout
from ..errors import RuntimeFailure
from ..plan.model import NodePlan, ProbePlan
from ..runtime import ssh
from ..runtime.host import Host
from ..state import LabState, save_state
from .events import Event, Progress

CONSOLE_POLL = 1.0


async def console_size(host: Host, lab: str, node: NodePlan) -> int:
    """The console log's size now: a console probe looks only at what follows."""
    if not any(p.kind == "console" for p in node.readiness):
        return 0
    return len(await host.read_file(lab, layout.console_log(node.name)) or b"")


async def _console_shows(
    host: Host, lab: str, node: str, offset: int, pattern: str, until: float
) -> None:
    regex, seen = re.compile(pattern, re.M), b""
    while True:
        seen += await host.read_file(lab, layout.console_log(node), offset + len(seen)) or b""
        if regex.search(seen.decode(errors="replace")):
            return
        if time.monotonic() > until:
            raise RuntimeFailure(f"the console never showed /{pattern}/")
        await asyncio.sleep(CONSOLE_POLL)


async def wait_until_ready(
    state: LabState,
    host: Host,
    node: NodePlan,
    target: ssh.SSHTarget,
    deadline: float,
    progress: Progress,
) -> None:
    """Run the node's probes in order; the first that fails says which and why."""
    record = state.nodes[node.name]
    for probe in node.readiness:
        until = time.monotonic() + probe.timeout if probe.timeout else deadline
        record.phase = f"waiting: {probe.label}"
        save_state(state)
        progress(Event(node.name, "ready?", probe.label))
        try:
            await _run(probe, state.name, host, node.name, record.console_offset, target, until)
        except RuntimeFailure as exc:
            raise RuntimeFailure(f"readiness probe {probe.label}: {exc}") from None


async def _run(
    probe: ProbePlan, lab: str, host: Host, node: str, offset: int, target: ssh.SSHTarget,
    until: float,
) -> None:  # fmt: skip
    if probe.kind == "ssh":
        await ssh.wait_ready(target, until)
    elif probe.kind == "console":
        await _console_shows(host, lab, node, offset, probe.pattern, until)
    else:
        await ssh.wait_output(target, probe.command, probe.pattern, until)
