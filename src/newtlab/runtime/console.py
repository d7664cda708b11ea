"""Serial-console automation: log in on a VM's console and run the bootstrap commands.

The login is the platform's dialog (``ConsolePlan.login``): expect/send
steps whose prompts match only at the end of the output so far, after ANSI
codes, carriage-return redraws and the dialog's ``ignore`` patterns are
removed. QEMU serves the console on a TCP port (``server=on,wait=off``), so
output printed before we connect is lost: a step that nudges presses Enter
until its prompt shows. Each command is followed by an ``echo`` of a marker
and ``$?`` written so that its echo differs from its output; the marker line
tells us the command finished and how.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import RuntimeFailure
from ..plan.model import ConsolePlan, DialogStepPlan
from ..templates import render
from .transports.base import ConsoleAddress

NUDGE_INTERVAL = 1.5
PROMPT_WINDOW = 4096  # patterns are matched within this many characters of the end
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean(raw: str, ignore: Sequence[re.Pattern[str]] = ()) -> str:
    """What a terminal would show: no ANSI codes, redrawn lines (``\\r``) at their
    last state, ``\\n`` line ends, and no text matching an ignore pattern."""
    text = _ANSI.sub("", raw)
    lines = [line.rstrip("\r") for line in text.split("\n")]
    text = "\n".join(line[line.rfind("\r") + 1 :] for line in lines)
    for pattern in ignore:
        text = pattern.sub("", text)
    return text


def prompt_pattern(expect: str) -> re.Pattern[str]:
    """A prompt matches only at the very end of the output (whitespace aside)."""
    return re.compile(rf"(?:{expect})\s*\Z")


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with each secret, where it stands as a word of its own, as ``******``
    (a password such as "newtlab" must not mangle ``newtlab-net-up``)."""
    for secret in secrets:
        if secret:
            text = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", "******", text)
    return text


@dataclass
class CommandResult:
    command: str
    status: int
    output: str


async def open_console(
    address: ConsoleAddress,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if isinstance(address, str):
        return await asyncio.open_unix_connection(address)
    return await asyncio.open_connection(*address)


class ConsoleSession:
    """A conversation with one serial console."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ignore: Sequence[str] = (),
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.ignore = [re.compile(pattern) for pattern in ignore]
        self.buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._serial = 0

    @classmethod
    async def connect(
        cls, address: ConsoleAddress, deadline: float, ignore: Sequence[str] = ()
    ) -> ConsoleSession:
        while True:
            try:
                reader, writer = await asyncio.wait_for(open_console(address), 2)
                return cls(reader, writer, ignore)
            except (TimeoutError, OSError):
                if time.monotonic() > deadline:
                    where = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
                    raise RuntimeFailure(f"serial console {where} refused connections") from None
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def send(self, text: str) -> None:
        self.writer.write(text.encode())
        await self.writer.drain()

    def text(self) -> str:
        return clean(self.buffer, self.ignore)

    async def expect(
        self,
        patterns: Sequence[re.Pattern[str]],
        deadline: float,
        nudge: str | None = None,
    ) -> tuple[int, re.Match[str]]:
        """Read until a pattern matches the cleaned output; consume up to its end.

        Patterns are tried on the last ``PROMPT_WINDOW`` characters only
        (what is waited for shows at the end), so a long boot log costs nothing.
        On timeout, ``TimeoutError`` carries the last output.
        """
        last_nudge = float("-inf")  # nudge at once: output before we connected is lost
        while True:
            text = self.text()
            for i, pattern in enumerate(patterns):
                match = pattern.search(text, max(len(text) - PROMPT_WINDOW, 0))
                if match:
                    self.buffer = text[match.end() :]
                    return i, match
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(text[-300:].strip())
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
            self.buffer += self._decoder.decode(chunk)
            # Keep memory bounded while a long boot scrolls past.
            if len(self.buffer) > 256 * 1024:
                self.buffer = self.buffer[-64 * 1024 :]

    async def drain(self, quiet: float, deadline: float) -> None:
        """Read until the console is quiet for ``quiet`` s, and forget what it printed."""
        while time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536), quiet)
            except TimeoutError:
                break
            if not chunk:
                raise RuntimeFailure("the serial console closed (did the VM stop?)")
        self.buffer = ""

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
        lines = before.split("\n")
        return CommandResult(command, int(match.group(1)), "\n".join(lines[1:]).strip())


def fill(template: str, values: Mapping[str, str]) -> str:
    """Render a dialog command (Jinja2) with shell-quoted values."""
    return render(template, {k: shlex.quote(v) for k, v in values.items()})


# What progress lines show instead of these values: never a password, and the key
# (a long line) by its name.
SHOWN_AS = {
    "console_pass": "******",
    "ssh_pass": "******",
    "ssh_pubkey": "<the lab's public key>",
}


def shown(template: str, values: Mapping[str, str]) -> str:
    """A dialog command as typed, but with each value of ``SHOWN_AS`` by its label:
    rendered with a plain marker in its place (shell quoting leaves it alone)."""
    markers = {name: f"NEWTLABVALUE{i}X" for i, name in enumerate(SHOWN_AS) if values.get(name)}
    text = fill(template, {**values, **markers})
    for name, marker in markers.items():
        text = text.replace(marker, SHOWN_AS[name])
    return text


class Stalled(RuntimeFailure):
    """The console stopped short: the step it waited in, and its last lines."""

    def __init__(self, step: str, tail: str, secrets: Sequence[str] = ()) -> None:
        lines = [line.strip() for line in redact(tail, secrets).splitlines() if line.strip()]
        shown = "\n  ".join(lines[-4:]) or "(nothing)"
        super().__init__(f"the serial console stalled {step}; its last lines:\n  {shown}")


def _watched(steps: Sequence[DialogStepPlan], at: int) -> list[int]:
    """Steps whose prompts may show next: this one and, past optional ones, the next."""
    watched = [at]
    while steps[watched[-1]].optional and watched[-1] + 1 < len(steps):
        watched.append(watched[-1] + 1)
    return watched


async def log_in(
    session: ConsoleSession,
    console: ConsolePlan,
    values: Mapping[str, str],
    deadline: float,
    step: Callable[[str], None] = lambda _: None,
) -> bool:
    """Run the login dialog to its last step. True if the console password was typed."""
    steps = console.login
    prompts = [prompt_pattern(s.expect) for s in steps]
    fails = [re.compile(pattern) for pattern in console.fail]
    secrets = [console.password, values.get("ssh_pass", "")]
    typed_password = False
    previous = "\r"  # what the previous step typed; a retry types it again
    at = 0
    while at < len(steps):
        current = steps[at]
        watched = _watched(steps, at)
        where = f"waiting for step {current.name!r} /{current.expect}/"
        if len(watched) > 1:  # an optional prompt: say what else would do
            others = ", ".join(f"{steps[i].name!r} /{steps[i].expect}/" for i in watched[1:])
            where += f" (or {others})"
        step(f"waiting for {current.name!r}")
        for attempt in range(current.retries + 1):
            until = deadline
            if current.timeout is not None:
                until = min(deadline, time.monotonic() + current.timeout)
            try:
                which, match = await session.expect(
                    [prompts[i] for i in watched] + fails,
                    until,
                    "\r" if current.nudge else None,
                )
                break
            except TimeoutError as exc:
                if attempt == current.retries or time.monotonic() >= deadline:
                    raise Stalled(where, str(exc), secrets) from None
                await session.send(previous)
        if which >= len(watched):
            shown = redact(match.group(0).strip(), secrets)
            raise RuntimeFailure(
                f"the console dialog failed {where}: the console printed {shown!r} "
                "(a fail pattern) — check vm_credentials and the platform's vm_console"
            )
        at = watched[which]
        send = steps[at].send
        if send is not None:
            previous = render(send, values) + "\r"
            await session.send(previous)
            typed_password |= bool(console.password) and console.password in previous
        at += 1
    return typed_password


@dataclass(frozen=True)
class ConfigPush:
    """A startup configuration typed line by line, each answered by ``prompt``."""

    lines: Sequence[str]
    prompt: str
    fail: Sequence[str] = ()
    timeout: float = 30


async def push_config(
    session: ConsoleSession,
    push: ConfigPush,
    deadline: float,
    step: Callable[[str], None],
    secrets: Sequence[str],
) -> None:
    """Type each line once the previous one got its prompt back; a ``fail`` match stops."""
    prompt = prompt_pattern(push.prompt)
    fails = [re.compile(pattern) for pattern in push.fail]
    await session.drain(0.5, deadline)  # what is left of the login or commands
    lines = ["", *push.lines]  # an empty line first: a fresh prompt to start from
    for number, line in enumerate(lines):
        if number:
            step(f"startup config line {number}/{len(lines) - 1}")
        await session.send(line + "\r")
        until = min(deadline, time.monotonic() + push.timeout)
        try:
            # Refusals first: a refused line's prompt follows its error message.
            which, match = await session.expect([*fails, prompt], until)
        except TimeoutError as exc:
            raise Stalled(f"pushing the startup config at line {number}: `{line}`", str(exc),
                          secrets) from None  # fmt: skip
        if which < len(fails):
            raise RuntimeFailure(redact(
                f"the startup config's line {number} `{line}` was refused: "
                f"{match.group(0).strip()!r}", secrets,
            ))  # fmt: skip


async def bootstrap(
    address: ConsoleAddress,
    console: ConsolePlan,
    values: Mapping[str, str],
    deadline: float,
    step: Callable[[str], None] = lambda _: None,
    push: ConfigPush | None = None,
) -> list[CommandResult]:
    """Log in on the console, run the password, bootstrap, user and key commands in
    order, then type the startup configuration (``push``) if there is one."""
    if not console.login:
        return []  # no dialog: the platform needs nothing typed on its console
    values = {**values, "console_user": console.user, "console_pass": console.password}
    session = await ConsoleSession.connect(address, deadline, console.ignore)
    secrets = [console.password, values.get("ssh_pass", "")]
    try:
        typed_password = await log_in(session, console, values, deadline, step)
        commands = []
        if not typed_password and console.user and console.password:
            commands += console.set_password  # so vm_credentials work over SSH as well
        commands += console.bootstrap
        if values.get("ssh_user") and values["ssh_user"] != console.user:
            commands += console.create_user
        if values.get("ssh_pubkey"):
            commands += console.install_key
        results = []
        if commands:  # synchronise: from here on, output belongs to our commands
            try:
                await session.run("true", deadline)
            except TimeoutError as exc:
                raise Stalled("running a first command after login", str(exc), secrets) from None
        for template in commands:
            command, showing = fill(template, values), shown(template, values)
            step(showing)
            try:
                result = await session.run(command, deadline)
            except TimeoutError as exc:
                raise Stalled(f"running `{showing}`", str(exc), secrets) from None
            if result.status != 0:
                raise RuntimeFailure(
                    redact(
                        f"console command failed (exit {result.status}): {command}\n"
                        f"{result.output}",
                        secrets,
                    )
                )
            results.append(result)
        if push is not None:
            await push_config(session, push, deadline, step, secrets)
        await session.send("exit\r")
        return results
    finally:
        await session.close()
