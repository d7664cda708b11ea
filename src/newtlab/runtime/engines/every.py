"""``EveryEngine``: this machine's VMs whatever runs them — newtlab's own QEMUs and the
domains of each libvirt daemon this home has used here — for the commands that must find a
lab's VMs without its plan: destroy of a lab whose state is lost, and prune.

Each VM is stopped by the engine that reported it; what an engine keeps of a lab (libvirt's
definitions and storage pool) is forgotten by each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from ...plan.model import Accel, NodePlan
from ..processes import LabProcess
from .base import SnapshotAction, VmEngine

T = TypeVar("T")


class EveryEngine:
    def __init__(self, engines: Sequence[VmEngine]) -> None:
        self._engines = list(engines)  # the first also starts VMs, should anyone ask
        self._owners: dict[tuple[str, str], VmEngine] = {}

    @property
    def name(self) -> str:
        return "+".join(engine.name for engine in self._engines)

    @property
    def tools(self) -> Mapping[str, str]:
        return self._engines[0].tools

    async def _each(self, work: Callable[[VmEngine], Awaitable[T]]) -> list[T]:
        return list(await asyncio.gather(*(work(engine) for engine in self._engines)))

    async def problems(self, needs: Sequence[tuple[str, str]] = ()) -> list[str]:
        found = await self._each(lambda engine: engine.problems(needs))
        return [line for lines in found for line in dict.fromkeys(lines)]

    async def describe(self) -> str:
        return "; ".join(await self._each(lambda engine: engine.describe()))

    async def choose_accel(self, requested: str) -> tuple[Accel, str]:
        return await self._engines[0].choose_accel(requested)

    async def start(self, lab: str, node: NodePlan) -> int:
        return await self._engines[0].start(lab, node)

    def _owner(self, lab: str, node: str) -> VmEngine:
        return self._owners.get((lab, node), self._engines[0])

    async def stop(self, lab: str, node: str, pid: int, grace: float) -> bool:
        return await self._owner(lab, node).stop(lab, node, pid, grace)

    async def forget(self, lab: str) -> list[str]:
        left = await self._each(lambda engine: engine.forget(lab))
        return [line for lines in left for line in lines]

    async def running(self, lab: str, node: str, pid: int) -> bool:
        return await self._owner(lab, node).running(lab, node, pid)

    async def processes(self, lab: str | None = None) -> list[LabProcess]:
        found = await self._each(lambda engine: engine.processes(lab))
        for engine, processes in zip(self._engines, found, strict=True):
            self._owners.update({(p.lab, p.node): engine for p in processes})
        return [process for processes in found for process in processes]

    async def set_link(self, lab: str, node: str, netdev: str, up: bool) -> None:
        await self._owner(lab, node).set_link(lab, node, netdev, up)

    async def read_log(self, lab: str, node: str, offset: int = 0) -> bytes | None:
        return await self._owner(lab, node).read_log(lab, node, offset)

    async def set_running(self, lab: str, node: str, running: bool) -> None:
        await self._owner(lab, node).set_running(lab, node, running)

    async def snapshot(self, lab: str, node: str, action: SnapshotAction, tag: str) -> None:
        await self._owner(lab, node).snapshot(lab, node, action, tag)

    async def start_saved(self, lab: str, node: NodePlan, tag: str, machine: str) -> int:
        return await self._engines[0].start_saved(lab, node, tag, machine)

    async def vm_facts(self, lab: str, node: str, machine: str) -> dict[str, str]:
        return await self._owner(lab, node).vm_facts(lab, node, machine)

    async def installed_facts(self) -> dict[str, Any]:
        return await self._engines[0].installed_facts()
