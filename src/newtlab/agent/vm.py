"""Starting and stopping one node's QEMU, talking to it over raw QMP (JSON lines)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from . import AgentError, layout, procs
from .paths import connectable

START_TIMEOUT = 30.0


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(text[-lines:])


class _Stream(Protocol):
    def readline(self) -> bytes: ...
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...


class _Monitor:
    """One QMP session: commands in turn; events that arrive meanwhile are kept in order."""

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream
        self._events: list[dict[str, Any]] = []

    def _read(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self._stream.readline() or b"{}")
        return message

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Its reply (``return`` or ``error``)."""
        message = {"execute": command, **({"arguments": arguments} if arguments else {})}
        self._stream.write(json.dumps(message).encode() + b"\n")
        self._stream.flush()
        while True:
            reply = self._read()
            if "event" not in reply:
                return reply
            self._events.append(reply)

    def next_event(self) -> dict[str, Any]:
        """The oldest event not yet taken, waiting for one if need be ({} once QEMU is gone)."""
        return self._events.pop(0) if self._events else self._read()


@contextlib.contextmanager
def _monitor(lab_dir: Path, node: str, timeout: float) -> Iterator[_Monitor]:
    """The node's QMP monitor, greeted and in command mode."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        with connectable(lab_dir / layout.qmp_socket(node)) as path:
            sock.connect(path)
        with sock.makefile("rwb") as stream:
            stream.readline()  # the greeting
            monitor = _Monitor(stream)
            monitor.execute("qmp_capabilities")
            yield monitor


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
    with _monitor(lab_dir, node, timeout) as monitor:
        return monitor.execute(command, arguments)


def qmp_job(
    lab_dir: Path, node: str, command: str, arguments: dict[str, Any], timeout: float
) -> None:
    """Run one of QEMU's job commands (``snapshot-save``, ``-load``, ``-delete``) on the
    node's monitor and wait until the job concludes; its error, if any, is raised."""
    job = f"newtlab-{command}"
    with _monitor(lab_dir, node, timeout) as monitor:
        started = monitor.execute(command, {"job-id": job, **arguments})
        if "error" in started:
            raise AgentError(f"{node}: {command}: {started['error'].get('desc', started)}")
        while True:  # the job's events come unasked
            event = monitor.next_event()
            if not event:
                raise AgentError(f"{node}: QEMU closed its monitor during {command}")
            if event.get("data") == {"id": job, "status": "concluded"}:
                break
        jobs = monitor.execute("query-jobs").get("return", [])
        monitor.execute("job-dismiss", {"id": job})
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
