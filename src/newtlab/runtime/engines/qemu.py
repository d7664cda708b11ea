"""``QemuEngine``: each VM is a QEMU process the agent starts with the plan's argv.

The argv (``plan.qemu_args``) names the process ``newtlab:<lab>:<node>`` and
runs it in the lab's directory, so the agent finds it by that tag and checks
a PID is still it before any signal; QMP (raw, on a Unix socket) answers
when it is up, powers it down and sets a NIC's carrier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from ...agent import layout
from ...agent.tools import PACKAGES, QEMU_BINARY
from ...plan.model import Accel, NodePlan
from ...plan.qemu_args import held_argv
from ..images import probe_files
from ..processes import LabProcess, from_rows
from ..transports.base import Transport, missing
from .base import SnapshotAction


def _quiet(_line: str) -> None:
    pass


class QemuEngine:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    @property
    def name(self) -> str:
        return "qemu"

    @property
    def tools(self) -> Mapping[str, str]:
        return PACKAGES

    async def problems(self, needs: Sequence[tuple[str, str]] = ()) -> list[str]:
        return await missing(self._transport, PACKAGES, needs)

    async def describe(self) -> str:
        return "QEMU, started by newtlab"

    async def choose_accel(self, requested: str) -> tuple[Accel, str]:
        files = None
        found = probe_files() if requested == "auto" else None
        if found is not None:  # the probe boots a tiny kernel there: it must be there
            files = [await self._transport.provide(str(f), True, _quiet) for f in found]
        accel, note = await self._transport.call(
            "qemu_accel", requested=requested, probe_files=files
        )
        return cast(Accel, accel), str(note)

    async def start(self, lab: str, node: NodePlan) -> int:
        pid = await self._transport.call("qemu_start", lab=lab, node=node.name, argv=node.qemu_argv)
        return int(pid)

    async def stop(self, lab: str, node: str, pid: int, grace: float) -> bool:
        return bool(
            await self._transport.call("qemu_stop", lab=lab, node=node, pid=pid, grace=grace)
        )

    async def forget(self, lab: str) -> list[str]:
        return []  # a stopped QEMU leaves nothing but the lab's files

    async def running(self, lab: str, node: str, pid: int) -> bool:
        return bool(await self._transport.call("qemu_running", lab=lab, node=node, pid=pid))

    async def processes(self, lab: str | None = None) -> list[LabProcess]:
        return from_rows(await self._transport.call("qemu_processes", lab=lab))

    async def set_link(self, lab: str, node: str, netdev: str, up: bool) -> None:
        await self._transport.call("qemu_set_link", lab=lab, node=node, netdev=netdev, up=up)

    async def read_log(self, lab: str, node: str, offset: int = 0) -> bytes | None:
        data: bytes | None = await self._transport.call(
            "read_file", lab=lab, relative=layout.qemu_log(node), offset=offset
        )
        return data

    async def set_running(self, lab: str, node: str, running: bool) -> None:
        await self._transport.call("qemu_set_running", lab=lab, node=node, running=running)

    async def snapshot(self, lab: str, node: str, action: SnapshotAction, tag: str) -> None:
        await self._transport.call("qemu_snapshot", lab=lab, node=node, action=action, tag=tag)

    async def start_saved(self, lab: str, node: NodePlan, tag: str, machine: str) -> int:
        held = node.model_copy(update={"qemu_argv": held_argv(node.qemu_argv, machine)})
        pid = await self.start(lab, held)
        await self.snapshot(lab, node.name, "load", tag)
        return pid

    async def vm_facts(self, lab: str, node: str, machine: str) -> dict[str, str]:
        facts = await self._transport.call("qemu_vm_facts", lab=lab, node=node, machine=machine)
        return dict(facts)

    async def installed_facts(self) -> dict[str, Any]:
        return dict(await self._transport.call("qemu_binary_facts", binary=QEMU_BINARY))
