"""Where an operation runs: a ``Transport`` to one machine and its agent.

A transport runs the agent's operations (``agent.ops``) on its machine and
gives the rest of the runtime what only "where" decides: running a command,
reaching a port or a Unix socket there, and making a file of this machine
available there. ``LocalTransport`` is this machine (the agent in a worker
thread); ``SshTransport`` is a server (the agent shipped and run over SSH,
JSON in and out). The VM engines and datapaths (``runtime.engines``,
``runtime.datapaths``) are written once over this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

Say = Callable[[str], None]  # one line of progress, e.g. of an upload


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str  # stdout and stderr together


class Reader(Protocol):
    async def readline(self) -> bytes: ...
    async def read(self, n: int = -1) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


Streams = tuple[Reader, Writer]
ConsoleAddress = str | tuple[str, int]  # a Unix socket path, or (address, port)


class Transport(Protocol):
    """One machine, as newtlab reaches it."""

    @property
    def name(self) -> str:
        """The plan's name for the machine (``local`` when there is no server pool)."""
        ...

    async def call(self, op: str, **arguments: Any) -> Any:
        """Run agent operation ``op`` there; its result (``RuntimeFailure`` with the
        agent's message if it failed)."""
        ...

    async def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        """Run a command to completion there."""
        ...

    def reach(
        self, port: int, address: str = "127.0.0.1"
    ) -> AbstractAsyncContextManager[tuple[str, int]]:
        """An address from which this machine connects to ``address:port`` of that one
        (a console on its loopback, a VM's SSH forward on its address)."""
        ...

    def reach_unix(self, lab: str, relative: str) -> AbstractAsyncContextManager[str]:
        """A path on this machine from which to connect to the Unix socket ``relative``
        in the lab's directory there (for a server, a forward of its SSH connection,
        listening in a directory only this user reaches)."""
        ...

    async def open_unix(self, lab: str, relative: str) -> Streams:
        """A connection to the Unix socket ``relative`` in the lab's directory there
        (``OSError`` if nothing listens)."""
        ...

    async def check_image(self, image: str, sha256: str = "") -> str | None:
        """None if base image ``image`` is usable for a VM there (one of this machine's
        is checked here: it is sent on use), else the problem, said for a user."""
        ...

    async def check_boot_file(self, kind: str, path: str) -> str | None:
        """``check_image`` for a kernel or initramfs booted directly (``vm_kernel``,
        ``vm_initrd``): one that can be read."""
        ...

    async def provide(self, path: str, upload: bool, say: Say) -> str:
        """The path there of ``path``, a file of this machine: a server gets a copy,
        uploaded once (when ``upload``) and kept by content; a path that exists only
        there is used as it is. Progress lines go to ``say``."""
        ...

    async def problems(self) -> list[str]:
        """What the machine lacks for newtlab to work there at all (a server's python3,
        its SSH forwarding), one line each."""
        ...

    async def close(self) -> None: ...


MISSING_SCRIPT = """
for wanted; do
  case $wanted in /*) test -e "$wanted" ;; *) command -v "$wanted" >/dev/null ;; esac ||
    echo "$wanted"
done
"""


async def missing(
    transport: Transport,
    programs: Mapping[str, str],
    files: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """The ``programs`` (name → Debian package) and ``files`` ((path, package) pairs)
    that machine lacks, one line each with the package to install. Asked with ``sh``,
    so it needs nothing else there."""
    wanted = {**programs, **dict(files)}
    if not wanted:
        return []
    result = await transport.run(["sh", "-c", MISSING_SCRIPT, "sh", *wanted])
    absent = result.output.split("\n")
    return [f"{name} not found — install {package}" for name, package in wanted.items()
            if name in absent]  # fmt: skip
