"""Finding and signalling a lab's own processes, and only those (from ``/proc``).

Every QEMU runs with ``-name newtlab:<lab>:<node>`` and every bridge (and
its supervisor, which also has ``--supervise``) with ``--lab <lab>`` in its
argv, and each runs in its lab's directory, ``$NEWTLAB_HOME/labs/<lab>``.
A process is the lab's only when both match: its tag, and its working
directory (``/proc/PID/cwd``, which names the NEWTLAB_HOME it belongs to —
a lab of the same name under another home is never touched, and the link
outlives the directory: a lab whose directory was lost is still found).
Before a PID is signalled both are read again, so a PID the kernel has
reused for something else is never touched; and processes whose PIDs never
reached the lab's state (a deploy killed half-way) are still found by tag.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from .paths import lab_dir

QEMU_TAG = "newtlab:{lab}:{node}"


def qemu_name(cmdline: list[str]) -> str:
    """The ``-name`` value of a QEMU argv (without ``,process=…`` suffixes), or ``""``."""
    for i, arg in enumerate(cmdline[:-1]):
        if arg == "-name":
            return cmdline[i + 1].split(",")[0]
    return ""


def _flag(cmdline: list[str], flag: str) -> str | None:
    if flag in cmdline[:-1]:
        return cmdline[cmdline.index(flag) + 1]
    return None


def _is_newtlink(cmdline: list[str]) -> bool:
    return any(
        part.endswith("newtlink") or part.endswith("newtlink.__main__") for part in cmdline[:4]
    )


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


def qemu_tag(lab: str, node: str) -> Tag:
    return Tag("qemu", lab, node)


def bridge_tag(lab: str) -> Tag:
    """Matches the supervisor and the bridge of ``lab``."""
    return Tag("newtlink", lab)


def cmdline(pid: int) -> list[str] | None:
    """``pid``'s argv; None if it is gone, a zombie or a kernel thread."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    if not data:
        return None
    return [part.decode(errors="replace") for part in data.rstrip(b"\0").split(b"\0")]


def _pids() -> list[int]:
    return sorted(int(name) for name in os.listdir("/proc") if name.isdigit())


def _in_lab_dir(pid: int, lab: str) -> bool:
    """``pid`` runs in this home's directory of ``lab`` (or ran there, if it was deleted)."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
    except OSError:
        return False
    return cwd == os.path.realpath(lab_dir(lab))


def is_ours(pid: int, tag: Tag) -> bool:
    """True if ``pid`` is alive and is the process ``tag`` describes, of this home."""
    if pid <= 0:
        return False
    argv = cmdline(pid)
    return argv is not None and tag.matches(argv) and _in_lab_dir(pid, tag.lab)


def find(tag: Tag) -> list[int]:
    """PIDs of every live process matching ``tag``."""
    return [pid for pid in _pids() if is_ours(pid, tag)]


def libvirt_guests(names: Collection[str]) -> dict[str, int]:
    """The PIDs of the QEMUs libvirt runs for domains ``names`` (its argv names each
    ``-name guest=NAME,…``; it runs them from ``/``, not from a lab directory)."""
    wanted, found = set(names), {}
    for pid in _pids():
        argv = cmdline(pid)
        name = qemu_name(argv).removeprefix("guest=") if argv else ""
        if name in wanted:
            found[name] = pid
    return found


QEMU_KINDS = ("qemu",)
NEWTLINK_KINDS = ("supervisor", "bridge")


def _tagged() -> Iterator[tuple[int, str, str, str]]:
    """``(pid, kind, lab, node)`` of every live tagged process of this home, any lab."""
    for pid in _pids():
        argv = cmdline(pid)
        if argv is None:
            continue
        name = qemu_name(argv)
        if name.startswith("newtlab:") and name.count(":") == 2:
            _, lab, node = name.split(":")
            kind = "qemu"
        elif _is_newtlink(argv) and _flag(argv, "--lab"):
            lab, node = _flag(argv, "--lab") or "", ""
            kind = "supervisor" if "--supervise" in argv else "bridge"
        else:
            continue
        if _in_lab_dir(pid, lab):
            yield pid, kind, lab, node


def processes(kinds: Collection[str], lab: str | None = None) -> list[tuple[int, str, str, str]]:
    """``(pid, kind, lab, node)`` of every live process of ``lab`` (None: of any lab of
    this home) whose kind is one of ``kinds``: ``qemu`` (``node`` names its VM),
    ``supervisor`` or ``bridge``."""
    return [p for p in _tagged() if p[1] in kinds and (lab is None or p[2] == lab)]


def _exited(pid: int) -> bool:
    """Gone, or a zombie whose every thread has exited (its files are closed)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return True
    state, threads = fields[0], int(fields[17])
    return state == b"Z" and threads <= 1


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
