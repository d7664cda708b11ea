"""Helpers for tests that deploy real labs through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import labprocs
from newtlab.agent import procs
from newtlab.lab import lab_of_node

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "line3"
T = TypeVar("T")


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newtlab", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=timeout,
    )


def shell(command: str, stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    """A README command line, as a user types it: bash in the repository, the venv's
    bin first on the PATH (what `source .venv/bin/activate` does)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", command], cwd=REPO, env=env, stdin=stdin,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def readme_block(after: str) -> list[str]:
    """The commands of the README's first ``sh`` block after the text ``after``, without
    their comments."""
    readme = (REPO / "README.md").read_text()
    block = readme.split(after, 1)[1].split("```sh\n", 1)[1].split("```")[0]
    lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line]


# Where the shared OpenSSH connections of ``ssh`` listen (one per node), for this run.
SSH_MUX = Path(tempfile.gettempdir()) / f"newtlab-test-ssh-{os.getpid()}"


def ssh_run(
    node: str, command: str | list[str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``command`` run on ``node`` as ``newtlab ssh NODE -- COMMAND`` runs a string (the
    remote shell reads it) or ``newtlab exec NODE -- ARGV…`` a list (exactly that argv):
    the ssh argv those commands exec, from the same code. Whatever it exits with.

    One OpenSSH connection per node is kept and shared (ControlMaster): a call costs a
    round trip, not a Python start and a fresh login. It ends with the VM, or by
    ``close_ssh``.
    """
    SSH_MUX.mkdir(mode=0o700, exist_ok=True)
    exact = isinstance(command, list)
    argv = lab_of_node(node).ssh_command(node, command if exact else [command], exact=exact)
    argv[1:1] = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "ControlMaster=auto",
                 "-o", f"ControlPath={SSH_MUX}/%C", "-o", "ControlPersist=30"]  # fmt: skip
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


def ssh(node: str, command: str | list[str], timeout: float = 60) -> str:
    """``ssh_run``, which must succeed; its output."""
    result = ssh_run(node, command, timeout)
    assert result.returncode == 0, f"ssh {node} {command!r}: {result.stdout}{result.stderr}"
    return result.stdout


def close_ssh() -> None:
    """End every connection ``ssh`` keeps."""
    for socket in SSH_MUX.glob("*") if SSH_MUX.is_dir() else ():
        subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "-"],
                       capture_output=True, timeout=30)  # fmt: skip
        socket.unlink(missing_ok=True)


def ping(node: str, address: str) -> None:
    # The first replies may be lost while e1000/virtio links settle: allow a few tries.
    ssh(node, f"ping -c 3 -W 2 {address} || ping -c 3 -W 2 {address}")


def status() -> dict[str, Any]:
    """``newtlab status --json`` of the only deployed lab."""
    result = run_cli("status", "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def wait_for(predicate: Callable[[], T], timeout: float = 60) -> T:
    """The first truthy value of ``predicate()``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def two_routers(topology: dict[str, Any]) -> None:
    """line3 without r3: r1 — r2, one link (one boot fewer where a third VM adds nothing)."""
    devices = topology["devices"]
    del devices["r3"]
    del devices["r2"]["interfaces"]["eth2"]


def kill_leftovers(lab: str) -> list[int]:
    """Kill anything still tagged with ``lab``; the PIDs that were left."""
    left = list(labprocs.vms(lab)) + procs.find(procs.bridge_tag(lab))
    for pid in left:
        procs.terminate(
            pid, procs.Tag("qemu", lab) if pid in labprocs.vms(lab) else procs.bridge_tag(lab), 1
        )
    return left


@dataclass
class SpecDir:
    path: Path
    lab: str
    ports: dict[str, int]

    def profiles(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((self.path / "profiles").iterdir())}
