"""``SshTransport``: a server of the pool, over one SSH connection.

A server needs sshd (with TCP forwarding), ``python3`` ≥ 3.11, QEMU and
``qemu-img`` — nothing of newtlab. On first use the host agent and newtlink
are shipped into the server's ``~/.newtlab/runtime/<digest>/`` (once per
version) and every operation runs there as ``python3 -m newtlab_agent OP``
with JSON in and out: the same code ``LocalTransport`` runs in-process. Base
images are uploaded over SFTP into ``~/.newtlab/images/<sha256>/<name>``
(written under a temporary name, renamed when complete, never overwritten)
and reused by later deploys. One connection serves a whole command, at most
``MAX_SESSIONS`` channels at once (sshd's ``MaxSessions`` is 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import asyncssh

from ...agent import files
from ...agent.wire import decode, encode
from ...errors import RuntimeFailure
from ...plan.model import LOOPBACK, HostPlan
from ..images import content_digest
from . import bundle
from .base import CommandResult, Say, Streams

MAX_SESSIONS = 8
CONNECT_TIMEOUT = 15.0
CHECK_PYTHON = """
if ! command -v python3 >/dev/null; then echo "python3 not found — install python3"
elif ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "python3 is older than 3.11 (newtlab runs its agent with the server's python3)"
fi
"""


class _HostKeys(asyncssh.SSHClient):
    """Host key check: keys in the known-hosts files pass; an unknown host's key is
    recorded in newtlab's own file (trust on first use); a changed key is refused."""

    def __init__(self, store: Path, pattern: str, known_for_host: bool) -> None:
        self.store = store
        self.pattern = pattern
        self.known_for_host = known_for_host
        self.refused: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        if self.known_for_host:  # the host is known with another key: it changed
            self.refused = key
            return False
        self.store.parent.mkdir(parents=True, exist_ok=True)
        line = f"{self.pattern} {key.export_public_key().decode().strip()}\n"
        with self.store.open("a") as handle:
            handle.write(line)
        return True


def _known_hosts_files(store: Path) -> list[str]:
    files = [Path("~/.ssh/known_hosts").expanduser(), store]
    return [str(f) for f in files if f.is_file()]


async def connect(server: HostPlan, store: Path) -> asyncssh.SSHClientConnection:
    """One SSH connection to ``server``, its host key checked (``store``: newtlab's own file)."""
    files = _known_hosts_files(store)
    known = asyncssh.read_known_hosts(files) if files else asyncssh.import_known_hosts("")
    port = server.ssh_port
    trusted = asyncssh.match_known_hosts(known, server.address, server.ip, port)[0]
    pattern = server.address if port == 22 else f"[{server.address}]:{port}"
    keys = _HostKeys(store, pattern, bool(trusted))
    options: dict[str, Any] = {
        "port": port,
        "known_hosts": known,
        "client_factory": lambda: keys,
        "connect_timeout": CONNECT_TIMEOUT,
        "keepalive_interval": 30,
    }
    if server.user:
        options["username"] = server.user
    if server.identity_file:
        options["client_keys"] = [str(Path(server.identity_file).expanduser())]
    where = f"server {server.name} ({server.address}:{port})"
    try:
        return await asyncssh.connect(server.address, **options)
    except asyncssh.HostKeyNotVerifiable:
        if keys.refused is None:
            raise
        fingerprint = keys.refused.get_fingerprint()
        raise RuntimeFailure(
            f"{where}: its SSH host key changed (it now offers {fingerprint}). If the server "
            f"was reinstalled, remove the old key — `ssh-keygen -R '{pattern}'` (and with "
            f"`-f {store}`) — then run again; otherwise do not connect: someone may be "
            "impersonating it"
        ) from None
    except asyncssh.PermissionDenied as exc:
        raise RuntimeFailure(
            f"{where}: SSH login refused ({exc.reason}) — set user and identity_file for the "
            "server in newtlab.servers, or load the key into ssh-agent"
        ) from None
    except (OSError, asyncssh.Error) as exc:
        reason = getattr(exc, "reason", "") or getattr(exc, "strerror", "") or str(exc)
        raise RuntimeFailure(
            f"{where}: cannot connect: {reason or type(exc).__name__} — check its address in "
            f"newtlab.servers (topology.json) and that sshd answers on port {port} there; "
            "`newtlab doctor -S DIR` checks every server"
        ) from None


class SshTransport:
    """A server of the pool, over one SSH connection for one command."""

    def __init__(self, server: HostPlan, conn: asyncssh.SSHClientConnection, home: str) -> None:
        self._server = server
        self._conn = conn
        self._home = home  # the server's NEWTLAB_HOME, absolute
        self._sessions = asyncio.Semaphore(MAX_SESSIONS)
        self._shipping = asyncio.Lock()
        self._runtime = ""

    @classmethod
    async def open(cls, server: HostPlan, store: Path) -> SshTransport:
        conn = await connect(server, store)
        result = await conn.run('printf %s "${NEWTLAB_HOME:-$HOME/.newtlab}"', check=False)
        return cls(server, conn, str(result.stdout))

    async def close(self) -> None:
        self._conn.close()
        with contextlib.suppress(Exception):
            await self._conn.wait_closed()

    @property
    def name(self) -> str:
        return self._server.name

    def __repr__(self) -> str:
        return f"SshTransport({self._server.name!r}, {self._server.address!r})"

    async def _shell(
        self, command: str, stdin: str | None = None, timeout: float | None = None
    ) -> asyncssh.SSHCompletedProcess:
        async with self._sessions:
            return await self._conn.run(command, input=stdin, check=False, timeout=timeout)

    async def _ship(self) -> str:
        """The agent's directory on the server, shipping it there first if needed."""
        async with self._shipping:
            if self._runtime:
                return self._runtime
            target = f"{self._home}/runtime/{bundle.digest()}"
            present = await self._shell(f"test -f {shlex.quote(target)}/.complete")
            if present.exit_status != 0:
                staging = f"{self._home}/runtime/.{bundle.digest()}.{uuid.uuid4().hex[:8]}"
                async with self._conn.start_sftp_client() as sftp:
                    for package in {path.split("/")[0] for path in bundle.files()}:
                        await sftp.makedirs(f"{staging}/{package}", exist_ok=True)
                    for relative, content in bundle.files().items():
                        async with sftp.open(f"{staging}/{relative}", "wb") as handle:
                            await handle.write(content)
                    async with sftp.open(f"{staging}/.complete", "wb") as handle:
                        await handle.write(b"")
                # Another command may have shipped the same version meanwhile: keep one.
                q_staging, q_target = shlex.quote(staging), shlex.quote(target)
                await self._shell(f"mv -T {q_staging} {q_target} 2>/dev/null || rm -rf {q_staging}")
            self._runtime = target
            return target

    async def call(self, op: str, **arguments: Any) -> Any:
        runtime = await self._ship()
        command = f"PYTHONPATH={shlex.quote(runtime)} exec python3 -s -m {bundle.AGENT} {op}"
        request = json.dumps({name: encode(value) for name, value in arguments.items()})
        result = await self._shell(command, stdin=request)
        if result.exit_status != 0:
            tail = str(result.stderr or result.stdout).strip().splitlines()[-3:]
            raise RuntimeFailure(
                f"{self.name}: {op} failed on the server (exit {result.exit_status}): "
                + " / ".join(tail)
            )
        reply = json.loads(str(result.stdout))
        if "error" in reply:
            raise RuntimeFailure(f"{self.name}: {reply['error']}")
        return decode(reply["result"])

    async def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        try:
            result = await self._shell(shlex.join(argv), timeout=timeout)
        except asyncssh.TimeoutError:
            raise RuntimeFailure(f"{self.name}: {argv[0]} did not finish in time") from None
        output = str(result.stdout or "") + str(result.stderr or "")
        return CommandResult(result.exit_status or 0, output)

    @contextlib.asynccontextmanager
    async def reach(self, port: int, address: str = LOOPBACK) -> AsyncIterator[tuple[str, int]]:
        listener = await self._conn.forward_local_port(LOOPBACK, 0, address, port)
        try:
            yield LOOPBACK, listener.get_port()
        finally:
            listener.close()

    @contextlib.asynccontextmanager
    async def reach_unix(self, lab: str, relative: str) -> AsyncIterator[str]:
        # A forward of the SSH connection, listening in a directory only this user reaches.
        with tempfile.TemporaryDirectory(prefix="newtlab-") as private:
            local = os.path.join(private, "socket")
            remote = f"{self._home}/labs/{lab}/{relative}"
            listener = await self._conn.forward_local_path(local, remote)
            try:
                yield local
            finally:
                listener.close()

    async def open_unix(self, lab: str, relative: str) -> Streams:
        # sshd forwards a Unix socket (StreamLocalForwarding, on by default)
        path = f"{self._home}/labs/{lab}/{relative}"
        try:
            return await self._conn.open_unix_connection(path, encoding=None)
        except asyncssh.Error as exc:  # said as this machine's own socket would say it
            raise ConnectionRefusedError(exc.reason) from None

    async def _exists(self, path: str) -> bool:
        return (await self._shell(f"test -f {shlex.quote(path)}")).exit_status == 0

    async def _upload(self, local: Path, remote: str, say: Say) -> None:
        """``local`` to ``remote`` over SFTP, under a temporary name until complete."""
        partial = f"{remote}.part-{uuid.uuid4().hex[:8]}"
        total = local.stat().st_size
        shown = -1

        def progress(_src: bytes, _dst: bytes, done: int, _size: int) -> None:
            nonlocal shown
            percent = done * 100 // total if total else 100
            if percent // 5 != shown // 5:
                shown = percent
                bar = "#" * (percent // 5) + "." * (20 - percent // 5)
                say(f"{self.name}: uploading {local.name} [{bar}] {percent}% of {total >> 20} MiB")

        await self._shell(f"mkdir -p {shlex.quote(remote.rsplit('/', 1)[0])}")
        async with self._conn.start_sftp_client() as sftp:
            await sftp.put(str(local), partial, progress_handler=progress)
        say(f"{self.name}: uploaded {local.name} ({total >> 20} MiB), kept for later deploys")
        # Never overwrite: a copy stored meanwhile by another command is the same content.
        q_partial, q_remote = shlex.quote(partial), shlex.quote(remote)
        moved = await self._shell(
            f"mv -n {q_partial} {q_remote}; rm -f {q_partial}; test -f {q_remote}"
        )
        if moved.exit_status != 0:
            raise RuntimeFailure(f"{self.name}: could not store {remote}")

    async def check_image(self, image: str, sha256: str = "") -> str | None:
        if Path(image).is_file():  # ours, to be uploaded if the server lacks it
            return await asyncio.to_thread(files.image_problem, image, sha256)
        problem = await self.call("check_image", image=image, sha256=sha256)
        return self._looked_both(cast(str | None, problem))

    async def check_boot_file(self, kind: str, path: str) -> str | None:
        if Path(path).is_file():  # as a base image: sent on use
            return await asyncio.to_thread(files.boot_file_problem, kind, path)
        problem = await self.call("check_boot_file", kind=kind, path=path)
        return self._looked_both(cast(str | None, problem))

    def _looked_both(self, problem: str | None) -> str | None:
        """A file missing on the server was not on this machine either: say both."""
        if problem and " not found: " in problem:
            return f"{problem} (looked on this machine and on server {self.name})"
        return problem

    async def provide(self, path: str, upload: bool, say: Say) -> str:
        local = Path(path)
        if not local.is_file():  # only on the server, at that path: use it there
            if await self._exists(path):
                return path
            raise RuntimeFailure(f"{self.name}: {path} not found, here or on the server")
        digest = await asyncio.to_thread(content_digest, local)
        remote = f"{self._home}/images/{digest[:16]}/{local.name}"
        if await self._exists(remote):
            return remote
        if not upload:
            raise RuntimeFailure(
                f"{self.name}: base image {local.name} is not on the server ({remote}) — "
                "deploy without --no-upload to send it, or copy it there"
            )
        await self._upload(local, remote, say)
        return remote

    async def problems(self) -> list[str]:
        python = await self._shell(CHECK_PYTHON)
        problems = [line for line in str(python.stdout).splitlines() if line]
        server = self._server
        try:  # consoles and SSH are reached through the connection's TCP forwarding
            _, writer = await self._conn.open_connection(server.ip, server.ssh_port)
            writer.close()
        except asyncssh.ChannelOpenError as exc:
            problems.append(
                f"SSH TCP forwarding refused ({exc.reason}) — set "
                "AllowTcpForwarding yes in the server's sshd_config"
            )
        return problems
