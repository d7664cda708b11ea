"""``LocalHost``: the ``Host`` contract on this machine.

Processes are started with subprocess in their own session (they outlive the
CLI), found and checked with psutil, and lab files live in this machine's
``NEWTLAB_HOME/labs/<lab>/``, beside the lab's state when this machine is
also the one running newtlab.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from .. import layout
from ..errors import RuntimeFailure
from ..home import cache_dir, ensure_private_dir, images_dir, lab_dir
from ..plan.model import LOCAL_HOST, Accel, NodePlan
from ..plan.ports import PortUse
from . import accel, bridge, disk, portprobe, procs, qemu
from .host import CommandResult, LabProcess


def _probe_files() -> tuple[Path, Path] | None:
    """The KVM probe's kernel and initramfs, if the host image has been built."""
    from ..image import probe_artifacts

    return probe_artifacts(images_dir())


class LocalHost:
    """This machine."""

    def __init__(self, name: str = LOCAL_HOST) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"LocalHost({self._name!r})"

    # -- lab files ------------------------------------------------------------------------

    async def prepare_lab(self, lab: str) -> None:
        directory = ensure_private_dir(lab_dir(lab))
        for sub in layout.HOST_SUBDIRS:
            ensure_private_dir(directory / sub)

    async def remove_lab(self, lab: str) -> None:
        directory = lab_dir(lab)
        for sub in layout.HOST_SUBDIRS:
            await asyncio.to_thread(shutil.rmtree, directory / sub, ignore_errors=True)
        for name in layout.HOST_FILES:
            (directory / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # left in place if the lab's state lives here too
            directory.rmdir()

    async def check_image(self, image: str) -> str | None:
        return disk.image_problem(image)

    async def create_overlay(self, lab: str, node: str, base: str) -> None:
        await asyncio.to_thread(disk.create_overlay, base, lab_dir(lab) / layout.overlay(node))

    async def read_file(self, lab: str, relative: str, offset: int = 0) -> bytes | None:
        try:
            with (lab_dir(lab) / relative).open("rb") as handle:
                handle.seek(offset)
                return handle.read()
        except FileNotFoundError:
            return None

    # -- VMs -------------------------------------------------------------------------------

    async def start_vm(self, lab: str, node: NodePlan) -> int:
        return await asyncio.to_thread(qemu.start, lab_dir(lab), lab, node)

    async def stop_vm(self, lab: str, node: str, pid: int, grace: float) -> bool:
        return await qemu.stop(lab_dir(lab), lab, node, pid, grace)

    async def vm_running(self, lab: str, node: str, pid: int) -> bool:
        return procs.is_ours(pid, qemu.tag(lab, node))

    async def processes(self, lab: str) -> list[LabProcess]:
        return await asyncio.to_thread(procs.lab_processes, lab)

    # -- the bridge ------------------------------------------------------------------------

    async def start_bridge(self, lab: str, config: dict[str, Any]) -> int:
        return await asyncio.to_thread(bridge.start, lab_dir(lab), lab, config)

    async def stop_bridge(self, lab: str) -> list[str]:
        return await asyncio.to_thread(bridge.stop, lab)

    async def bridge_stats(self, lab: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(bridge.stats, lab_dir(lab))

    # -- the network -----------------------------------------------------------------------

    async def probe_ports(self, uses: Iterable[PortUse]) -> list[str]:
        return portprobe.probe_local(uses)

    @contextlib.asynccontextmanager
    async def reach(self, port: int) -> AsyncIterator[tuple[str, int]]:
        yield "127.0.0.1", port

    # -- the machine -----------------------------------------------------------------------

    async def choose_accel(self, requested: str) -> tuple[Accel, str]:
        return await asyncio.to_thread(
            accel.choose_accel, requested, cache_dir() / "accel.json", _probe_files
        )

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
