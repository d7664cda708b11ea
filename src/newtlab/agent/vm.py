"""Starting and stopping one node's QEMU, talking to it over raw QMP (JSON lines)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from . import AgentError, layout, procs
from .paths import connectable

START_TIMEOUT = 30.0


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(text[-lines:])


def qmp(
    lab_dir: Path,
    node: str,
    command: str,
    timeout: float = 5,
    arguments: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one QMP command on the node's monitor; its reply (``return`` or ``error``).

    QEMU greets from the monitor's own thread at once; commands wait for its
    main loop, so a reply also proves every device was created.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        with connectable(lab_dir / layout.qmp_socket(node)) as path:
            sock.connect(path)
        with sock.makefile("rwb") as stream:
            stream.readline()  # the greeting
            reply: dict[str, Any] = {}
            for execute, args in (("qmp_capabilities", None), (command, arguments)):
                message = {"execute": execute, **({"arguments": args} if args else {})}
                stream.write(json.dumps(message).encode() + b"\n")
                stream.flush()
                while True:  # skip asynchronous events
                    reply = json.loads(stream.readline() or b"{}")
                    if "event" not in reply:
                        break
            return reply


def qmp_job(
    lab_dir: Path, node: str, command: str, arguments: dict[str, Any], timeout: float
) -> None:
    """Run one of QEMU's job commands (``snapshot-save``, ``-load``, ``-delete``) on the
    node's monitor and wait until the job concludes; its error, if any, is raised."""
    job = f"newtlab-{command}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        with connectable(lab_dir / layout.qmp_socket(node)) as path:
            sock.connect(path)
        with sock.makefile("rwb") as stream:
            stream.readline()  # the greeting
            concluded = False

            def execute(name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
                nonlocal concluded
                message = {"execute": name, **({"arguments": args} if args else {})}
                stream.write(json.dumps(message).encode() + b"\n")
                stream.flush()
                while True:
                    reply: dict[str, Any] = json.loads(stream.readline() or b"{}")
                    if reply.get("event") == "JOB_STATUS_CHANGE":
                        concluded |= reply["data"] == {"id": job, "status": "concluded"}
                    elif "event" not in reply:
                        return reply

            execute("qmp_capabilities")
            started = execute(command, {"job-id": job, **arguments})
            if "error" in started:
                raise AgentError(f"{node}: {command}: {started['error'].get('desc', started)}")
            while not concluded:  # the job's events come unasked
                event = json.loads(stream.readline() or b"{}")
                if not event:
                    raise AgentError(f"{node}: QEMU closed its monitor during {command}")
                if event.get("event") == "JOB_STATUS_CHANGE":
                    concluded = event["data"] == {"id": job, "status": "concluded"}
            jobs = execute("query-jobs").get("return", [])
            execute("job-dismiss", {"id": job})
            error = next((j.get("error") for j in jobs if j.get("id") == job), None)
            if error:
                raise AgentError(f"{node}: {command}: {error}")


def start(lab_dir: Path, node: str, argv: list[str]) -> int:
    """Launch QEMU in its own session (it outlives us) and return its PID.

    Waits until QEMU's monitor answers a QMP command, which happens only once
    every device is created, so argv errors (a port taken since the probe, a
    bad device) surface here with QEMU's own message.
    """
    (lab_dir / layout.pidfile(node)).unlink(missing_ok=True)
    qmp_path = lab_dir / layout.qmp_socket(node)
    qmp_path.unlink(missing_ok=True)
    log_path = lab_dir / layout.qemu_log(node)
    with log_path.open("ab") as log:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=lab_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise AgentError(f"{argv[0]} not found — install qemu-system-x86") from None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise AgentError(
                f"QEMU for {node} exited with code {code} (see {log_path}):\n{log_tail(log_path)}"
            )
        if qmp_path.exists():
            try:
                if "return" in qmp(lab_dir, node, "query-status", timeout=1):
                    return proc.pid
            except (OSError, ValueError):
                pass
        time.sleep(0.02)
    return proc.pid


def stop(lab_dir: Path, lab: str, node: str, pid: int, grace: float) -> bool:
    """ACPI powerdown over QMP, then SIGTERM, then SIGKILL; True once the process is gone.

    The PID is checked to still be this node's QEMU before every signal.
    """
    tag = procs.qemu_tag(lab, node)
    if not procs.is_ours(pid, tag):
        return True
    if grace > 0:
        try:
            qmp(lab_dir, node, "system_powerdown")
        except (OSError, ValueError):
            pass
        else:
            if procs.wait_gone(pid, grace):
                return True
    return procs.terminate(pid, tag, 5.0)
