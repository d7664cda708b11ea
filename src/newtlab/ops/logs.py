"""A node's logs as they grow: its console log, or its VM's own log."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from ..agent import layout
from ..errors import RuntimeFailure
from ..runtime.host import Host

FOLLOW_INTERVAL = 0.3
# What a guest's shell sends to ask its terminal something (the cursor position
# ESC[6n after each busybox prompt, the device attributes ESC[c): on a user's
# terminal they are answered into its input, in a file they are noise.
QUERY = re.compile(rb"\x1b\[[0-9;?>=]*[nc]")
PARTIAL = re.compile(rb"\x1b(\[[0-9;?>=]*)?$")  # a sequence the next chunk may finish


class QueryFilter:
    """Terminal queries taken out of a byte stream read in chunks (a query cut between
    two chunks included)."""

    def __init__(self) -> None:
        self.held = b""

    def __call__(self, chunk: bytes, last: bool = False) -> bytes:
        data = self.held + chunk
        cut = PARTIAL.search(data)
        self.held = b"" if last or cut is None else data[cut.start() :]
        if cut is not None and not last:
            data = data[: cut.start()]
        return QUERY.sub(b"", data)


async def log_chunks(
    host: Host,
    lab: str,
    node: str,
    *,
    qemu: bool = False,
    follow: bool = False,
    raw: bool = False,
) -> AsyncGenerator[bytes, None]:
    """The log's bytes in chunks as they are read; ``follow``: keep waiting for more
    (until the consumer stops), else stop at its end; ``raw``: as the guest wrote
    them, terminal queries included."""
    relative = layout.console_log(node)
    clean = QueryFilter()
    offset = 0
    while True:
        if qemu:
            data = await host.engine.read_log(lab, node, offset)
        else:
            data = await host.read_file(lab, relative, offset)
        if data is None:
            what = "its VM's log" if qemu else relative
            raise RuntimeFailure(f"no log yet for {node} ({what} on {host.name})")
        offset += len(data)
        if not data and not follow:
            if clean.held and not raw:
                yield clean(b"", last=True)
            return
        shown = data if raw else clean(data)
        if shown:
            yield shown
        elif not data:
            await asyncio.sleep(FOLLOW_INTERVAL)
