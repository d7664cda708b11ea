"""A lab's live processes on this machine, as the tests ask about them (``agent.procs``)."""

from __future__ import annotations

from newtlab.agent import procs


def vms(lab: str) -> dict[int, str]:
    """PID → node of every live QEMU of ``lab`` (this home)."""
    return {pid: node for pid, _, _, node in procs.processes(procs.QEMU_KINDS, lab)}


def home_labs() -> dict[str, list[int]]:
    """Lab → PIDs of every live QEMU and bridge of this home, whatever the lab."""
    found: dict[str, list[int]] = {}
    for pid, _, lab, _ in procs.processes((*procs.QEMU_KINDS, *procs.NEWTLINK_KINDS)):
        found.setdefault(lab, []).append(pid)
    return found
