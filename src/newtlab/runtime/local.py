"""``LocalHost``: the ``Host`` contract on this machine.

It runs the host agent's operations in-process (in worker threads, since
they block), the same code a server runs when newtlab ships the agent to it.
Lab files live in this machine's ``NEWTLAB_HOME/labs/<lab>/``, beside the
lab's state when this machine is also the one running newtlab.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

from ..agent import AgentError, layout, ops, paths
from ..errors import RuntimeFailure
from ..plan.capacity import Resources
from ..plan.model import LOCAL_HOST, Accel, NodePlan
from ..plan.ports import PortUse
from . import bridge_control
from .bridge_control import no_bridge
from .host import CommandResult, LabProcess, Say, UnusedCache, lab_processes
from .images import probe_files

T = TypeVar("T")


async def _call(operation: Callable[..., T], **arguments: Any) -> T:
    try:
        return await asyncio.to_thread(operation, **arguments)
    except AgentError as exc:
        raise RuntimeFailure(str(exc)) from None


class LocalHost:
    """This machine."""

    def __init__(self, name: str = LOCAL_HOST) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"LocalHost({self._name!r})"

    async def prepare_lab(self, lab: str) -> None:
        await _call(ops.prepare_lab, lab=lab)

    async def remove_lab(self, lab: str) -> None:
        await _call(ops.remove_lab, lab=lab)

    async def check_image(self, image: str, sha256: str = "") -> str | None:
        return await _call(ops.check_image, image=image, sha256=sha256)

    async def provide_image(self, image: str, upload: bool, say: Say) -> str:
        problem = await self.check_image(image)
        if problem:
            raise RuntimeFailure(problem)
        return image  # this machine's own file

    async def create_overlay(self, lab: str, node: str, base: str) -> None:
        await _call(ops.create_overlay, lab=lab, node=node, base=base)

    async def read_file(self, lab: str, relative: str, offset: int = 0) -> bytes | None:
        return await _call(ops.read_file, lab=lab, relative=relative, offset=offset)

    async def write_file(self, lab: str, relative: str, data: bytes) -> None:
        await _call(ops.write_file, lab=lab, relative=relative, data=ops.pack(data))

    async def start_vm(self, lab: str, node: NodePlan) -> int:
        return await _call(ops.start_vm, lab=lab, node=node.name, argv=node.qemu_argv)

    async def stop_vm(self, lab: str, node: str, pid: int, grace: float) -> bool:
        return await _call(ops.stop_vm, lab=lab, node=node, pid=pid, grace=grace)

    async def vm_running(self, lab: str, node: str, pid: int) -> bool:
        return await _call(ops.vm_running, lab=lab, node=node, pid=pid)

    async def processes(self, lab: str) -> list[LabProcess]:
        return lab_processes(await _call(ops.processes, lab=lab))

    async def survey(self, lab: str) -> tuple[list[LabProcess], dict[str, Any] | None]:
        found = await _call(ops.survey, lab=lab)
        return lab_processes(found["processes"]), found["stats"]

    async def start_bridge(self, lab: str, config: dict[str, Any]) -> int:
        return await _call(ops.start_bridge, lab=lab, config=config)

    async def stop_bridge(self, lab: str) -> list[str]:
        return await _call(ops.stop_bridge, lab=lab)

    async def bridge_stats(self, lab: str) -> dict[str, Any] | None:
        return await _call(ops.bridge_stats, lab=lab)

    async def probe_ports(self, uses: Iterable[PortUse]) -> list[str]:
        wanted = [(u.bind, u.port, u.purpose) for u in uses]
        return await _call(ops.probe_ports, uses=wanted)

    @contextlib.asynccontextmanager
    async def reach(self, port: int, address: str = "127.0.0.1") -> AsyncIterator[tuple[str, int]]:
        yield address, port

    async def resources(self) -> Resources:
        return Resources(**await _call(ops.resources))

    async def set_nic_link(self, lab: str, node: str, netdev: str, up: bool) -> None:
        await _call(ops.set_nic_link, lab=lab, node=node, netdev=netdev, up=up)

    async def _control(self, lab: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        path = paths.lab_dir(lab) / layout.BRIDGE_CONTROL
        try:
            return await asyncio.open_unix_connection(str(path))
        except OSError as exc:
            raise RuntimeFailure(no_bridge(self.name, lab, exc)) from None

    async def link_control(self, lab: str, request: dict[str, Any]) -> dict[str, Any]:
        return await bridge_control.ask(await self._control(lab), request)

    async def capture(
        self, lab: str, request: dict[str, Any], sink: Callable[[bytes], None]
    ) -> None:
        await bridge_control.capture(await self._control(lab), request, sink)

    async def unused_caches(self) -> list[UnusedCache]:
        return [UnusedCache(**entry) for entry in await _call(ops.unused_caches)]

    async def remove_caches(self, paths: list[str]) -> list[str]:
        return await _call(ops.remove_caches, paths=paths)

    async def check_machine(self, needs: Sequence[tuple[str, str]] = ()) -> list[str]:
        return await _call(ops.check_machine, needs=[list(n) for n in needs])

    async def choose_accel(self, requested: str) -> tuple[Accel, str]:
        found = probe_files()
        files = (str(found[0]), str(found[1])) if found else None
        accel, note = await _call(ops.choose_accel, requested=requested, probe_files=files)
        return cast(Accel, accel), note

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
