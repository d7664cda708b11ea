"""What runs the VMs: a ``VmEngine`` starts, stops and finds a host's VMs and controls
a running one (its NICs' carrier, pausing it, its snapshots).

``QemuEngine`` (``engines.qemu``) is QEMU started by newtlab's agent;
``LibvirtEngine`` (``engines.libvirt``) keeps VMs as libvirt domains behind the
same interface.
Which engine a host gets is chosen in ``runtime.hosts``; ``ops/`` only asks
for the operation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from ...plan.model import Accel, NodePlan
from ..processes import LabProcess

SnapshotAction = Literal["save", "load", "delete"]


class VmEngine(Protocol):
    @property
    def name(self) -> str:
        """What runs the VMs, in a word (``qemu``)."""
        ...

    @property
    def tools(self) -> Mapping[str, str]:
        """The programs it runs on its host → the Debian package holding each."""
        ...

    async def problems(self, needs: Sequence[tuple[str, str]] = ()) -> list[str]:
        """What the host lacks to run VMs this way (its tools, and the (file, package)
        pairs in ``needs``, e.g. UEFI firmware), one line each."""
        ...

    async def describe(self) -> str:
        """What runs the VMs there, in a line (a daemon: its version and what it can run)."""
        ...

    async def choose_accel(self, requested: str) -> tuple[Accel, str]:
        """The accelerator VMs get there (``auto`` proves KVM first) and a note why."""
        ...

    async def start(self, lab: str, node: NodePlan) -> int:
        """Start the node's VM (outliving this command); its PID once it is up."""
        ...

    async def stop(self, lab: str, node: str, pid: int, grace: float) -> bool:
        """ACPI powerdown (``grace`` s), then harder; True once it is gone. Nothing is
        touched unless ``pid`` is still this node's VM."""
        ...

    async def forget(self, lab: str) -> list[str]:
        """Remove what the engine keeps of ``lab`` beyond its running VMs (libvirt's domain
        definitions), once they are stopped; what could not be removed, one line each."""
        ...

    async def running(self, lab: str, node: str, pid: int) -> bool:
        """True if ``pid`` is alive and is this node's VM."""
        ...

    async def processes(self, lab: str | None = None) -> list[LabProcess]:
        """Every live VM of ``lab`` (None: of every lab of this home) on the host."""
        ...

    async def set_link(self, lab: str, node: str, netdev: str, up: bool) -> None:
        """Turn the carrier of one NIC of a running VM on or off (its guest sees it)."""
        ...

    async def read_log(self, lab: str, node: str, offset: int = 0) -> bytes | None:
        """The VM's own log (what QEMU said) from ``offset`` on; None if it has none yet."""
        ...

    async def set_running(self, lab: str, node: str, running: bool) -> None:
        """Pause a running VM (its clock stops) or resume a paused one."""
        ...

    async def snapshot(self, lab: str, node: str, action: SnapshotAction, tag: str) -> None:
        """Save the VM's whole state (memory, devices, disk) as ``tag`` inside its disk, load
        it back (the VM stays paused if it was), or delete it; waits until done."""
        ...

    async def start_saved(self, lab: str, node: NodePlan, tag: str, machine: str) -> int:
        """Start the node's VM held, on the versioned machine type ``machine``, in the state
        ``tag`` its overlay (staged from a snapshot) holds; its PID."""
        ...

    async def vm_facts(self, lab: str, node: str, machine: str) -> dict[str, str]:
        """What a saved state of the running VM needs again: ``qemu`` (its version) and
        ``machine`` (the versioned type ``machine``, an alias such as ``pc``, is there)."""
        ...

    async def installed_facts(self) -> dict[str, Any]:
        """The host's QEMU now: ``qemu`` (its version) and ``machines`` (every type)."""
        ...
