"""``LocalTransport``: this machine.

The agent's operations run in-process, in worker threads since they block:
the same code a server runs when newtlab ships the agent to it. Lab files
live in this machine's ``NEWTLAB_HOME/labs/<lab>/``, beside the lab's state
when this machine is also the one running newtlab.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ...agent import AgentError, ops, paths
from ...errors import RuntimeFailure
from ...plan.model import LOCAL_HOST, LOOPBACK
from .base import CommandResult, Say, Streams


class LocalTransport:
    """This machine."""

    def __init__(self, name: str = LOCAL_HOST) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"LocalTransport({self._name!r})"

    async def call(self, op: str, **arguments: Any) -> Any:
        try:
            return await asyncio.to_thread(ops.OPERATIONS[op], **arguments)
        except AgentError as exc:
            raise RuntimeFailure(str(exc)) from None

    async def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except FileNotFoundError:
            return CommandResult(127, f"{argv[0]}: command not found")
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeFailure(f"{argv[0]} did not finish within {timeout:.0f} s") from None
        return CommandResult(proc.returncode or 0, out.decode(errors="replace"))

    @contextlib.asynccontextmanager
    async def reach(self, port: int, address: str = LOOPBACK) -> AsyncIterator[tuple[str, int]]:
        yield address, port

    async def open_unix(self, lab: str, relative: str) -> Streams:
        with paths.connectable(paths.lab_dir(lab) / relative) as path:
            return await asyncio.open_unix_connection(path)

    @contextlib.asynccontextmanager
    async def reach_unix(self, lab: str, relative: str) -> AsyncIterator[str]:
        with paths.connectable(paths.lab_dir(lab) / relative) as path:
            yield path

    async def check_image(self, image: str, sha256: str = "") -> str | None:
        problem: str | None = await self.call("check_image", image=image, sha256=sha256)
        return problem

    async def check_boot_file(self, kind: str, path: str) -> str | None:
        problem: str | None = await self.call("check_boot_file", kind=kind, path=path)
        return problem

    async def provide(self, path: str, upload: bool, say: Say) -> str:
        if not Path(path).is_file():
            raise RuntimeFailure(f"{self._name}: {path} not found")
        return path  # this machine's own file

    async def problems(self) -> list[str]:
        return []

    async def close(self) -> None:
        pass
