"""A lab's live processes on a host, as the VM engine and the datapath report them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

ProcessKind = Literal["qemu", "supervisor", "bridge"]


@dataclass(frozen=True)
class LabProcess:
    """A VM's QEMU, the bridge's supervisor, or the bridge."""

    pid: int
    kind: ProcessKind
    node: str = ""  # the VM, for kind "qemu"
    lab: str = ""


def from_rows(rows: Iterable[Any]) -> list[LabProcess]:
    """``LabProcess``es from the agent's ``(pid, kind, lab, node)`` rows."""
    return [LabProcess(pid, cast(ProcessKind, kind), node, lab) for pid, kind, lab, node in rows]
