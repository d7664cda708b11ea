"""A node's logs as they grow: its console log, or its VM's own log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from ..agent import layout
from ..errors import RuntimeFailure
from ..runtime.host import Host

FOLLOW_INTERVAL = 0.3


async def log_chunks(
    host: Host, lab: str, node: str, *, qemu: bool = False, follow: bool = False
) -> AsyncGenerator[bytes, None]:
    """The log's bytes in chunks as they are read; ``follow``: keep waiting for more
    (until the consumer stops), else stop at its end."""
    relative = host.engine.log(node) if qemu else layout.console_log(node)
    offset = 0
    while True:
        data = await host.read_file(lab, relative, offset)
        if data is None:
            raise RuntimeFailure(f"no log yet for {node} ({relative} on {host.name})")
        if data:
            offset += len(data)
            yield data
        elif not follow:
            return
        else:
            await asyncio.sleep(FOLLOW_INTERVAL)
