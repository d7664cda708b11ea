"""Serial-console automation: log in on a VM's console and run the bootstrap commands.

QEMU serves the console on a TCP port (``server=on,wait=off``), so output
printed before we connect is lost: we nudge with a carriage return until a
login or shell prompt shows. Each command is followed by an ``echo`` of a
marker and ``$?`` written so that its echo differs from its output; the
marker line tells us the command finished and how.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import RuntimeFailure
from ..plan.model import ConsolePlan
from ..templates import render

NUDGE_INTERVAL = 1.5
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class CommandResult:
    command: str
    status: int
    output: str


class ConsoleSession:
    """A line-oriented conversation with one serial console."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self._serial = 0

    @classmethod
    async def connect(cls, host: str, port: int, deadline: float) -> ConsoleSession:
        while True:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
                return cls(reader, writer)
            except (TimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeFailure(
                        f"serial console {host}:{port} refused connections"
                    ) from None
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def send(self, text: str) -> None:
        self.writer.write(text.encode())
        await self.writer.drain()

    def text(self) -> str:
        return _ANSI.sub(b"", self.buffer).decode(errors="replace")

    async def expect(
        self, patterns: list[re.Pattern[str]], deadline: float, nudge: str | None = None
    ) -> tuple[int, re.Match[str]]:
        """Read until one pattern matches the (ANSI-stripped) output; consume up to it."""
        last_nudge = float("-inf")  # nudge at once: output before we connected is lost
        while True:
            text = self.text()
            for i, pattern in enumerate(patterns):
                match = pattern.search(text)
                if match:
                    self.buffer = text[match.end() :].encode()
                    return i, match
            now = time.monotonic()
            if now > deadline:
                tail = text[-300:].strip()
                raise TimeoutError(tail)
            if nudge is not None and now - last_nudge > NUDGE_INTERVAL:
                await self.send(nudge)
                last_nudge = now
            try:
                chunk = await asyncio.wait_for(
                    self.reader.read(65536), min(0.5, max(deadline - now, 0.01))
                )
            except TimeoutError:
                continue
            if not chunk:
                raise RuntimeFailure("the serial console closed (did the VM stop?)")
            self.buffer += chunk
            # Keep memory bounded while a long boot scrolls past.
            if len(self.buffer) > 256 * 1024:
                self.buffer = self.buffer[-64 * 1024 :]

    async def run(self, command: str, deadline: float) -> CommandResult:
        """Run one shell command; its exit status and output."""
        self._serial += 1
        marker = f"NLRC{self._serial}X"
        typed = f'{marker[:2]}""{marker[2:]}=$?'
        await self.send(f"{command}; echo {typed}\r")
        _, match = await self.expect([re.compile(rf"{marker}=(\d+)")], deadline)
        before = match.string[: match.start()]
        # What the command printed starts after the echo of the line we typed.
        echo_at = before.rfind(typed)
        if echo_at >= 0:
            before = before[echo_at + len(typed) :]
        lines = before.replace("\r", "").split("\n")
        return CommandResult(command, int(match.group(1)), "\n".join(lines[1:]).strip())


def fill(template: str, values: Mapping[str, str]) -> str:
    """Render a dialog command (Jinja2) with shell-quoted values."""
    return render(template, {k: shlex.quote(v) for k, v in values.items()})


class Stalled(RuntimeFailure):
    """The console stopped short: the step it waited in, and its last lines."""

    def __init__(self, step: str, tail: str) -> None:
        lines = [line.strip() for line in tail.replace("\r", "").splitlines() if line.strip()]
        shown = "\n  ".join(lines[-4:]) or "(nothing)"
        super().__init__(f"the serial console stalled {step}; its last lines:\n  {shown}")


async def login(session: ConsoleSession, console: ConsolePlan, deadline: float) -> bool:
    """Get to a shell prompt, logging in if the console shows a login prompt.

    True if a password was typed; False for a console that logs in by itself.
    """
    login_re = re.compile(console.login_prompt)
    password_re = re.compile(console.password_prompt)
    shell_re = re.compile(console.shell_prompt)
    incorrect = re.compile(r"(?i)login incorrect|authentication failure|permission denied")
    typed = False

    async def wait(step: str, patterns: list[re.Pattern[str]], nudge: str | None = None) -> int:
        try:
            which, _ = await session.expect(patterns, deadline, nudge)
        except TimeoutError as exc:
            raise Stalled(step, str(exc)) from None
        return which

    while True:
        which = await wait(f"waiting for the login prompt /{login_re.pattern}/ "
                           "(or a shell prompt)", [login_re, shell_re], nudge="\r")  # fmt: skip
        if which == 1:
            break
        await session.send(console.user + "\r")
        which = await wait(
            f"waiting for the password prompt /{password_re.pattern}/ after the user name",
            [password_re, shell_re, login_re, incorrect],
        )
        if which == 0:
            await session.send(console.password + "\r")
            typed = True
            which = await wait(
                f"waiting for the shell prompt /{shell_re.pattern}/ after the password",
                [shell_re, incorrect, login_re],
            )
            if which == 0:
                break
            raise RuntimeFailure(
                f"console login as {console.user!r} was refused — check vm_credentials"
            )
        if which == 1:
            break
        if which == 3:
            raise RuntimeFailure(f"console login as {console.user!r} was refused")
    # Synchronise: from here on, output belongs to our commands.
    try:
        await session.run("true", deadline)
    except TimeoutError as exc:
        raise Stalled("running a first command after login", str(exc)) from None
    return typed


async def bootstrap(
    host: str,
    port: int,
    console: ConsolePlan,
    values: Mapping[str, str],
    deadline: float,
    step: Callable[[str], None] = lambda _: None,
) -> list[CommandResult]:
    """Log in on the console and run the password, bootstrap, user and key commands in order."""
    session = await ConsoleSession.connect(host, port, deadline)
    try:
        typed_password = await login(session, console, deadline)
        commands = []
        if not typed_password and console.user and console.password:
            commands += console.set_password  # so vm_credentials work over SSH as well
        commands += console.bootstrap
        if values.get("ssh_user") and values["ssh_user"] != console.user:
            commands += console.create_user
        if values.get("ssh_pubkey"):
            commands += console.install_key
        results = []
        for template in commands:
            command = fill(template, values)
            step(template)
            try:
                result = await session.run(command, deadline)
            except TimeoutError as exc:
                raise Stalled(f"running `{template}`", str(exc)) from None
            if result.status != 0:
                raise RuntimeFailure(
                    f"console command failed (exit {result.status}): {command}\n{result.output}"
                )
            results.append(result)
        await session.send("exit\r")
        return results
    finally:
        await session.close()
