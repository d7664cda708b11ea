"""SSH to lab VMs: readiness (a real login), commands, and the lab's key pair."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from ..agent.fsutil import atomic_write
from ..errors import RuntimeFailure

HOST_KEY_ALGS = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]


@dataclass(frozen=True)
class SSHTarget:
    host: str
    port: int
    user: str
    password: str
    key_path: str

    def options(self, timeout: float) -> dict[str, object]:
        keys = [self.key_path] if self.key_path and Path(self.key_path).exists() else []
        return {
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "password": self.password or None,
            "client_keys": keys,
            "known_hosts": None,
            # ed25519 first: asyncssh's own order prefers RSA, which small images
            # may only create on demand (seconds under TCG) or not at all.
            "server_host_key_algs": HOST_KEY_ALGS,
            "agent_path": None,
            "login_timeout": timeout,
            "connect_timeout": timeout,
        }


def create_key_pair(path: Path) -> str:
    """Write a new ed25519 key pair (``path`` and ``path.pub``); return the public key line."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"newtlab-{path.parent.parent.name}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(
        path, key.export_private_key(), 0o600
    )  # never readable by others, not even briefly
    public = key.export_public_key("openssh").decode().strip()
    path.with_suffix(".pub").write_text(public + "\n")
    return public


def _reason(exc: BaseException) -> str:
    """An exception's message, or its type when it has none (asyncssh often has none)."""
    return str(exc) or type(exc).__name__


async def run(
    target: SSHTarget, command: str, timeout: float = 60, stdin: str | None = None
) -> asyncssh.SSHCompletedProcess:
    async with asyncssh.connect(**target.options(min(timeout, 15))) as conn:
        return await asyncio.wait_for(conn.run(command, input=stdin, check=False), timeout)


class Session:
    """Commands over one SSH connection; a failure says what failed, how, and its output."""

    def __init__(self, conn: asyncssh.SSHClientConnection) -> None:
        self.conn = conn

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, target: SSHTarget, what: str) -> AsyncIterator[Session]:
        try:
            conn = await asyncssh.connect(**target.options(15))
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            raise RuntimeFailure(f"{what}: no SSH login ({_reason(exc)})") from None
        async with conn:
            yield cls(conn)

    async def check(self, command: str, what: str, timeout: float, stdin: str | None = None) -> str:
        """Run ``command`` and return its output."""
        try:
            result = await asyncio.wait_for(
                self.conn.run(command, input=stdin, check=False), timeout
            )
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            raise RuntimeFailure(f"{what} failed: {_reason(exc)}") from None
        if result.exit_status != 0:
            said = (str(result.stdout or "") + str(result.stderr or "")).strip().splitlines()
            raise RuntimeFailure(
                f"{what} failed (exit {result.exit_status}): " + " / ".join(said[-5:])
            )
        return str(result.stdout or "")


async def wait_ready(target: SSHTarget, deadline: float, interval: float = 0.5) -> None:
    """Poll until an SSH login runs ``echo ready``; QEMU's port forward accepts TCP long before."""
    last_error = "no attempt"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeFailure(
                f"SSH timeout for {target.user}@{target.host}:{target.port} ({last_error})"
            )
        try:
            result = await run(target, "echo ready", timeout=max(min(remaining, 10), 1))
            if result.exit_status == 0 and "ready" in str(result.stdout):
                return
            last_error = f"echo exited {result.exit_status}"
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            last_error = _reason(exc)
        await asyncio.sleep(interval)


async def wait_output(target: SSHTarget, command: str, pattern: str, until: float) -> None:
    """Poll ``command`` until its output matches ``pattern`` (or, without one, it exits 0)."""
    last = "no attempt"
    while True:
        remaining = until - time.monotonic()
        try:
            result = await run(target, command, timeout=max(min(remaining, 30), 1))
            output = str(result.stdout or "") + str(result.stderr or "")
            if re.search(pattern, output, re.M) if pattern else result.exit_status == 0:
                return
            last = f"exit {result.exit_status}: {output.strip()[-200:]!r}"
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            last = _reason(exc)
        if time.monotonic() + 2 > until:
            raise RuntimeFailure(f"`{command}` never matched /{pattern}/ (last: {last})")
        await asyncio.sleep(2)
