"""``Host``: everything a lab does on one machine, behind one interface.

Orchestration (``ops/``, ``lab.py``) never starts a process, signals one or
touches a lab file except through a ``Host``; it knows *what* to do (the
plan), a host knows *how* on its machine. This machine is ``LocalHost``
(``runtime.local``); a server reached over SSH is another implementation of
the same contract, and the contract tests (``tests/host``) run against each.

A host keeps a lab's files under its own ``labs/<lab>/`` directory (paths
below are relative to it, see ``layout``) and identifies a lab's processes by
their argv tags, checking a PID is still the expected process before any
signal. All methods are coroutines so that several hosts work in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from ..plan.capacity import Resources
from ..plan.model import Accel, NodePlan
from ..plan.ports import PortUse

ProcessKind = Literal["qemu", "supervisor", "bridge"]
Say = Callable[[str], None]  # one line of progress, e.g. of an upload


@dataclass(frozen=True)
class LabProcess:
    """A live process of a lab: a VM's QEMU, the bridge's supervisor, or the bridge."""

    pid: int
    kind: ProcessKind
    node: str = ""  # the VM, for kind "qemu"


def lab_processes(rows: list[Any]) -> list[LabProcess]:
    """``LabProcess``es from the agent's ``(pid, kind, node)`` rows."""
    return [LabProcess(pid, cast(ProcessKind, kind), node) for pid, kind, node in rows]


@dataclass(frozen=True)
class UnusedCache:
    """Something a host keeps for deploys from other machines that nothing uses now."""

    kind: Literal["runtime", "image"]
    path: str
    bytes: int
    detail: str


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str  # stdout and stderr together


class Host(Protocol):
    """One machine that runs part of a lab."""

    @property
    def name(self) -> str:
        """The plan's name for this host (``local`` when there is no server pool)."""
        ...

    # -- lab files ------------------------------------------------------------------------

    async def prepare_lab(self, lab: str) -> None:
        """Create the lab's private directories on this host (mode 0700)."""
        ...

    async def remove_lab(self, lab: str) -> None:
        """Remove every file this host keeps for the lab (overlays, logs, sockets, config)."""
        ...

    async def check_image(self, image: str, sha256: str = "") -> str | None:
        """None if ``image`` is a usable qcow2 here (``files.image_problem``: readable,
        a complete backing chain outside any lab, the ``sha256`` digest if given),
        else the problem, said for a user."""
        ...

    async def provide_image(self, image: str, upload: bool, say: Say) -> str:
        """The path on this host of base image ``image`` (a path on newtlab's machine).

        A server gets a copy uploaded once (when ``upload``), stored by content;
        this machine uses the file itself. Progress lines go to ``say``.
        """
        ...

    async def create_overlay(self, lab: str, node: str, base: str) -> None:
        """The node's copy-on-write disk over ``base`` (a path on this host; never written)."""
        ...

    async def read_file(self, lab: str, relative: str, offset: int = 0) -> bytes | None:
        """A lab file's bytes from ``offset`` on (logs); None if it does not exist."""
        ...

    async def write_file(self, lab: str, relative: str, data: bytes) -> None:
        """Write a lab file (a node's config ISO), atomically, readable by this host only."""
        ...

    # -- VMs -------------------------------------------------------------------------------

    async def start_vm(self, lab: str, node: NodePlan) -> int:
        """Start the node's QEMU (outliving this command); its PID once QEMU is up."""
        ...

    async def stop_vm(self, lab: str, node: str, pid: int, grace: float) -> bool:
        """ACPI powerdown (``grace`` s), then SIGTERM, then SIGKILL; True once it is gone.

        Nothing is signalled unless ``pid`` is still this node's QEMU.
        """
        ...

    async def vm_running(self, lab: str, node: str, pid: int) -> bool:
        """True if ``pid`` is alive and is this node's QEMU."""
        ...

    async def processes(self, lab: str) -> list[LabProcess]:
        """Every live process tagged with ``lab`` on this host, found by its argv."""
        ...

    async def survey(self, lab: str) -> tuple[list[LabProcess], dict[str, Any] | None]:
        """``processes`` and ``bridge_stats`` at once (one round trip to a server)."""
        ...

    # -- the bridge ------------------------------------------------------------------------

    async def start_bridge(self, lab: str, config: dict[str, Any]) -> int:
        """Start the lab's supervised newtlink with ``config``; the supervisor's PID once ready."""
        ...

    async def stop_bridge(self, lab: str) -> list[str]:
        """Stop the lab's supervisor and bridge (orphans too); what would not stop."""
        ...

    async def bridge_stats(self, lab: str) -> dict[str, Any] | None:
        """The running bridge's stats document; None if no bridge answers."""
        ...

    # -- the network -----------------------------------------------------------------------

    async def probe_ports(self, uses: Iterable[PortUse]) -> list[str]:
        """One line per port that cannot be listened on here: ``<purpose>: port N in use``."""
        ...

    def reach(
        self, port: int, address: str = "127.0.0.1"
    ) -> AbstractAsyncContextManager[tuple[str, int]]:
        """An address from which this machine can connect to ``address:port`` of that host
        (a console on its loopback, a VM's SSH forward on its address)."""
        ...

    # -- the machine -----------------------------------------------------------------------

    async def check_machine(self, needs: Sequence[tuple[str, str]] = ()) -> list[str]:
        """What this host lacks to run a lab (QEMU, qemu-img, a server's python3 ≥ 3.11,
        SSH forwarding, the (file, package) pairs in ``needs``), one line each; empty
        when it has everything."""
        ...

    async def resources(self) -> Resources:
        """Memory available, cores, and free disk where this host keeps labs."""
        ...

    # -- links -----------------------------------------------------------------------------

    async def set_nic_link(self, lab: str, node: str, netdev: str, up: bool) -> None:
        """Turn the carrier of one NIC of a running VM here on or off (its guest sees it)."""
        ...

    async def link_control(self, lab: str, request: dict[str, Any]) -> dict[str, Any]:
        """One request to the lab's bridge here (see ``newtlink.control``); its answer."""
        ...

    async def capture(
        self, lab: str, request: dict[str, Any], sink: Callable[[bytes], None]
    ) -> None:
        """A capture from the lab's bridge here: ``sink`` gets the pcap stream in whole
        records until the capture ends (or the caller is cancelled)."""
        ...

    async def unused_caches(self) -> list[UnusedCache]:
        """Runtimes shipped here and base images uploaded here that nothing uses now
        (see ``agent.caches``)."""
        ...

    async def remove_caches(self, paths: list[str]) -> list[str]:
        """Remove those of ``paths`` (from ``unused_caches``) still unused; those removed."""
        ...

    async def choose_accel(self, requested: str) -> tuple[Accel, str]:
        """The accelerator VMs get here (``auto`` proves KVM first) and a note saying why."""
        ...

    async def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        """Run a command to completion on this host."""
        ...
