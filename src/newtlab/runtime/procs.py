"""Finding and signalling the lab's own processes, and only those.

Every QEMU runs with ``-name newtlab:<lab>:<node>`` and every bridge (and
its supervisor, which also has ``--supervise``) with ``--lab <lab>`` in its
argv. Before a PID is signalled its command line is checked again, so a PID
the kernel has reused for something else is never touched; and processes
whose PIDs never reached the state file (a deploy killed half-way) are still
found by their tag.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import psutil

from .host import LabProcess, ProcessKind

QEMU_TAG = "newtlab:{lab}:{node}"


def qemu_name(cmdline: list[str]) -> str:
    """The ``-name`` value of a QEMU argv (without ``,process=…`` suffixes), or ``""``."""
    for i, arg in enumerate(cmdline[:-1]):
        if arg == "-name":
            return cmdline[i + 1].split(",")[0]
    return ""


@dataclass(frozen=True)
class Tag:
    """What identifies one of our processes in its argv."""

    kind: str  # "qemu" or "newtlink"
    lab: str
    node: str = ""

    def matches(self, cmdline: list[str]) -> bool:
        if self.kind == "qemu":
            name = qemu_name(cmdline)
            if self.node:
                return name == QEMU_TAG.format(lab=self.lab, node=self.node)
            return name.startswith(f"newtlab:{self.lab}:")
        return _is_newtlink(cmdline) and _flag(cmdline, "--lab") == self.lab


def _flag(cmdline: list[str], flag: str) -> str | None:
    if flag in cmdline[:-1]:
        return cmdline[cmdline.index(flag) + 1]
    return None


def _is_newtlink(cmdline: list[str]) -> bool:
    return any(
        part.endswith("newtlink") or part.endswith("newtlink.__main__") for part in cmdline[:4]
    )


def _cmdline(pid: int) -> list[str] | None:
    try:
        return psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def is_ours(pid: int, tag: Tag) -> bool:
    """True if ``pid`` is alive and is the process ``tag`` describes."""
    if pid <= 0:
        return False
    cmdline = _cmdline(pid)
    return cmdline is not None and tag.matches(cmdline)


def find(tag: Tag) -> list[int]:
    """PIDs of every live process matching ``tag``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if cmdline and tag.matches(cmdline):
            found.append(proc.info["pid"])
    return sorted(found)


def lab_processes(lab: str) -> list[LabProcess]:
    """Every live process of ``lab``: QEMUs by ``-name``, supervisor and bridge by ``--lab``."""
    found = []
    prefix = f"newtlab:{lab}:"
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        name = qemu_name(cmdline)
        if name.startswith(prefix):
            found.append(LabProcess(proc.info["pid"], "qemu", name[len(prefix) :]))
        elif _is_newtlink(cmdline) and _flag(cmdline, "--lab") == lab:
            kind: ProcessKind = "supervisor" if "--supervise" in cmdline else "bridge"
            found.append(LabProcess(proc.info["pid"], kind))
    return sorted(found, key=lambda p: p.pid)


def lab_vms(lab: str) -> dict[int, str]:
    """PID → node name of every live QEMU tagged with ``lab``."""
    return {p.pid: p.node for p in lab_processes(lab) if p.kind == "qemu"}


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``pid`` to exit (reaping it if it is our child).

    Gone means every thread has exited, so its sockets and files are closed:
    a zombie whose leader exited first may still have threads closing them.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return True
            child = True  # not reapable yet: some thread still runs
        except ChildProcessError:
            child = False
        if not child and _exited(pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _exited(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE and proc.num_threads() <= 1
    except psutil.NoSuchProcess:
        return True
    except psutil.ZombieProcess:
        return True


def terminate(pid: int, tag: Tag, grace: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``grace`` s — only if ``pid`` is still ours.

    Returns True if the process is gone (or was never ours to stop).
    """
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not is_ours(pid, tag):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        if wait_gone(pid, wait):
            return True
    return not is_ours(pid, tag)
