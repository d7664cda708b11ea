"""Starting and stopping one node's QEMU process on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import time
from pathlib import Path

from qemu.qmp import QMPClient, QMPError

from .. import layout
from ..errors import RuntimeFailure
from ..plan.model import NodePlan
from . import procs

# qemu.qmp logs every failed connect at ERROR level; its failures are ours to report.
logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)


def tag(lab: str, node: str) -> procs.Tag:
    return procs.Tag("qemu", lab, node)


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(text[-lines:])


def start(lab_dir: Path, lab: str, node: NodePlan) -> int:
    """Launch QEMU in its own session (it outlives the CLI) and return its PID.

    Waits until QEMU's monitor answers a QMP command, which happens only once
    every device is created, so argv errors (a port taken since the probe, a
    bad device) surface here with QEMU's own message.
    """
    (lab_dir / layout.pidfile(node.name)).unlink(missing_ok=True)
    qmp = lab_dir / layout.qmp_socket(node.name)
    qmp.unlink(missing_ok=True)
    log_path = lab_dir / layout.qemu_log(node.name)
    with log_path.open("ab") as log:
        try:
            proc = subprocess.Popen(
                node.qemu_argv,
                cwd=lab_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise RuntimeFailure(
                f"{node.qemu_argv[0]} not found — install qemu-system-x86"
            ) from None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise RuntimeFailure(
                f"QEMU for {node.name} exited with code {code} (see {log_path}):\n"
                f"{log_tail(log_path)}"
            )
        if qmp.exists() and _monitor_ready(qmp):
            return proc.pid
        time.sleep(0.02)
    return proc.pid


def _monitor_ready(qmp: Path) -> bool:
    """True once QEMU's main loop runs (so every device exists): QMP answers a command.

    QEMU greets on its QMP socket from the monitor's own thread before its
    devices are created; only commands wait for the main loop.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(qmp))
            with sock.makefile("rwb") as stream:
                stream.readline()  # the greeting
                stream.write(b'{"execute": "qmp_capabilities"}\n')
                stream.flush()
                return stream.readline().startswith(b'{"return"')
        except OSError:
            return False


async def qmp_command(lab_dir: Path, node: str, command: str) -> object:
    client = QMPClient(f"newtlab-{node}")
    await asyncio.wait_for(client.connect(str(lab_dir / layout.qmp_socket(node))), 5)
    try:
        return await asyncio.wait_for(client.execute(command), 5)
    finally:
        await client.disconnect()


async def stop(lab_dir: Path, lab: str, node: str, pid: int, graceful: float) -> bool:
    """ACPI powerdown over QMP, then SIGTERM, then SIGKILL; True once the process is gone.

    The PID is checked to still be this node's QEMU before every signal.
    """
    node_tag = tag(lab, node)
    if not procs.is_ours(pid, node_tag):
        return True
    if graceful > 0:
        with contextlib.suppress(OSError, QMPError, asyncio.TimeoutError):
            await qmp_command(lab_dir, node, "system_powerdown")
            if await asyncio.to_thread(procs.wait_gone, pid, graceful):
                return True
    return await asyncio.to_thread(procs.terminate, pid, node_tag, 5.0)
