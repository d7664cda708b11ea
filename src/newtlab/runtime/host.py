"""``Host``: one machine that runs part of a lab, behind one object.

A host is three seams put together: *where* (``transport``: this machine, or
a server over SSH), *what runs the VMs* (``engine``) and *what joins the
links* (``datapath``); ``runtime.hosts`` chooses them. What belongs to no
seam in particular — the lab's files, ports, the machine's resources and
caches — the host asks of its transport's agent itself. Orchestration
(``ops/``, ``lab.py``) never starts a process, signals one or touches a lab
file except through a host; the contract tests (``tests/host``) run against
each transport.

A host keeps a lab's files under its own ``labs/<lab>/`` directory (paths
are relative to it, see ``agent.layout``). All methods are coroutines so
that several hosts work in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal

from ..agent import layout
from ..plan.capacity import Resources
from ..plan.model import LOCAL_HOST, LOOPBACK, NodePlan
from ..plan.ports import PortUse
from .datapaths.base import Datapath
from .engines.base import VmEngine
from .processes import LabProcess
from .transports.base import CommandResult, ConsoleAddress, Say, Transport


@dataclass(frozen=True)
class UnusedCache:
    """Something a host keeps for deploys from other machines that nothing uses now."""

    kind: Literal["runtime", "image"]
    path: str
    bytes: int
    detail: str


class Host:
    def __init__(self, transport: Transport, engine: VmEngine, datapath: Datapath) -> None:
        self.transport = transport
        self.engine = engine
        self.datapath = datapath

    @property
    def name(self) -> str:
        """The plan's name for this host (``local`` when there is no server pool)."""
        return self.transport.name

    def __repr__(self) -> str:
        return f"Host({self.transport!r})"

    async def close(self) -> None:
        await self.transport.close()

    # -- lab files ------------------------------------------------------------------------

    async def prepare_lab(self, lab: str) -> None:
        """Create the lab's private directories here (mode 0700)."""
        await self.transport.call("prepare_lab", lab=lab)

    async def remove_lab(self, lab: str) -> None:
        """Remove every file this host keeps for the lab (overlays, logs, sockets, config)."""
        await self.transport.call("remove_lab", lab=lab)

    async def check_image(self, image: str, sha256: str = "") -> str | None:
        """None if ``image`` is a usable qcow2 for a VM here (``agent.files.image_problem``:
        readable, a complete backing chain outside any lab, the ``sha256`` digest if
        given), else the problem, said for a user."""
        return await self.transport.check_image(image, sha256)

    async def check_boot_file(self, kind: str, path: str) -> str | None:
        """None if the ``vm_<kind>`` file ``path`` (kernel, initrd) can be read here."""
        return await self.transport.check_boot_file(kind, path)

    async def provide_image(self, image: str, upload: bool, say: Say) -> str:
        """The path here of base image ``image`` (see ``Transport.provide``)."""
        return await self.transport.provide(image, upload, say)

    async def create_overlay(self, lab: str, node: str, base: str) -> None:
        """The node's copy-on-write disk over ``base`` (a path here; never written)."""
        await self.transport.call("create_overlay", lab=lab, node=node, base=base)

    async def link_boot_files(self, lab: str, node: str, paths: dict[str, str]) -> None:
        """The node's links to the kernel and initramfs it boots directly (paths here)."""
        await self.transport.call("link_boot_files", lab=lab, node=node, paths=paths)

    async def read_file(self, lab: str, relative: str, offset: int = 0) -> bytes | None:
        """A lab file's bytes from ``offset`` on (logs); None if it does not exist."""
        data: bytes | None = await self.transport.call(
            "read_file", lab=lab, relative=relative, offset=offset
        )
        return data

    async def write_file(self, lab: str, relative: str, data: bytes) -> None:
        """Write a lab file (a node's config ISO), atomically, readable by this host only."""
        await self.transport.call("write_file", lab=lab, relative=relative, data=data)

    # -- lab snapshots: what overlays hold, and this host's store ---------------------------

    async def snapshot_tags(self, lab: str, node: str) -> list[str]:
        """The saved states the node's overlay holds (``VmEngine.snapshot``)."""
        return list(await self.transport.call("snapshot_tags", lab=lab, node=node))

    async def delete_snapshot_tag(self, lab: str, node: str, tag: str) -> None:
        """Remove a saved state from a stopped VM's overlay."""
        await self.transport.call("snapshot_delete_tag", lab=lab, node=node, tag=tag)

    async def keep_snapshot(self, lab: str, name: str, nodes: list[str]) -> None:
        """Copy the nodes' overlays (VMs paused) into this host's snapshot store."""
        await self.transport.call("snapshot_keep", lab=lab, name=name, nodes=nodes)

    async def trim_snapshot(self, lab: str, name: str) -> dict[str, Any]:
        """The store's copies of snapshot ``name`` rid of the overlays' other snapshots;
        per node, the bytes kept and its base image (``agent.snapshots.trim``)."""
        return dict(await self.transport.call("snapshot_trim", lab=lab, name=name))

    async def stage_snapshot(
        self, lab: str, name: str, node: str, base_bytes: int, base_mtime_ns: int
    ) -> None:
        """The node's overlay in the lab's directory, copied from the store, if its base
        image is still the one of that size and time."""
        await self.transport.call("snapshot_stage", lab=lab, name=name, node=node,
                                  base_bytes=base_bytes, base_mtime_ns=base_mtime_ns)  # fmt: skip

    async def remove_snapshot(self, lab: str, name: str) -> None:
        """This host's part of a snapshot."""
        await self.transport.call("snapshot_remove", lab=lab, name=name)

    async def snapshot_parts(self) -> list[dict[str, Any]]:
        """Every snapshot part this host keeps: lab, name, nodes, bytes."""
        return list(await self.transport.call("snapshot_parts"))

    # -- processes and the machine -----------------------------------------------------------

    async def processes(self, lab: str | None = None) -> list[LabProcess]:
        """Every live process of ``lab`` (None: of every lab of this home) here: its VMs
        and its datapath's."""
        vms, links = await asyncio.gather(self.engine.processes(lab), self.datapath.processes(lab))
        return vms + links

    async def check_machine(self, needs: Sequence[tuple[str, str]] = ()) -> list[str]:
        """What this host lacks to run a lab — to be reached at all, to run its VMs (and
        the (file, package) pairs in ``needs``), to carry its links — one line each."""
        problems = await self.transport.problems()
        if not problems:  # else the engine and datapath cannot be asked
            engine, datapath = await asyncio.gather(
                self.engine.problems(needs), self.datapath.problems()
            )
            problems = [*engine, *datapath]
        where = "" if self.name == LOCAL_HOST else f"{self.name}: "
        return [where + line for line in problems]

    async def resources(self) -> Resources:
        """Memory available, cores, and free disk where this host keeps labs."""
        return Resources(**await self.transport.call("resources"))

    async def probe_ports(self, uses: Iterable[PortUse]) -> list[str]:
        """One line per port that cannot be listened on here: ``<purpose>: port N in use``."""
        wanted = [(u.bind, u.port, u.purpose) for u in uses]
        return list(await self.transport.call("probe_ports", uses=wanted))

    def reach(
        self, port: int, address: str = LOOPBACK
    ) -> AbstractAsyncContextManager[tuple[str, int]]:
        """An address from which this machine connects to ``address:port`` here."""
        return self.transport.reach(port, address)

    @contextlib.asynccontextmanager
    async def reach_console(self, lab: str, node: NodePlan) -> AsyncIterator[ConsoleAddress]:
        """Where this machine connects to the node's serial console: a Unix socket path,
        or (address, port) for a lab with TCP consoles."""
        if node.console_port is None:
            async with self.transport.reach_unix(lab, layout.console_socket(node.name)) as path:
                yield path
        else:
            async with self.transport.reach(node.console_port) as address:
                yield address

    async def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        """Run a command to completion here."""
        return await self.transport.run(argv, timeout)

    async def exposed_labs(self) -> list[str]:
        """Lab directories here that other users may enter: "<path> is mode NNNN"."""
        return list(await self.transport.call("exposed_labs"))

    async def unused_caches(self) -> list[UnusedCache]:
        """Runtimes shipped here and base images uploaded here that nothing uses now
        (see ``agent.caches``)."""
        return [UnusedCache(**entry) for entry in await self.transport.call("unused_caches")]

    async def remove_caches(self, paths: list[str]) -> list[str]:
        """Remove those of ``paths`` (from ``unused_caches``) still unused; those removed."""
        return list(await self.transport.call("remove_caches", paths=paths))
