"""Serial-console automation against a scripted console that runs real shell commands."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from newtlab.errors import RuntimeFailure
from newtlab.plan.model import ConsolePlan
from newtlab.runtime.console import bootstrap, fill

CONSOLE = ConsolePlan(
    user="root",
    password="secret",
    login_prompt="login:",
    password_prompt="assword:",
    shell_prompt=r"[#$] ?(\x1b\[6n)?$",
    bootstrap=["echo net-up {{ hostname }}"],
    create_user=["echo create {{ ssh_user }}"],
    install_key=["echo key {{ ssh_pubkey }}"],
    set_password=["echo password {{ console_user }}:{{ console_pass }}"],
)


class FakeConsole:
    """A serial console: silent until nudged, then login, password, and a shell.

    Like a real one it echoes what is typed, prints busybox's ESC[6n after
    prompts, and runs each line with /bin/sh.
    """

    def __init__(
        self,
        password: str = "secret",
        boot_delay: float = 0.0,
        autologin: bool = False,
        chatty: bool = False,
        stall_after_password: bool = False,
    ) -> None:
        self.password = password
        self.boot_delay = boot_delay
        self.autologin = autologin  # a shell from the start, like a getty with autologin
        self.chatty = chatty  # prompts in pieces, kernel log lines before them
        self.stall_after_password = stall_after_password
        self.commands: list[str] = []

    async def prompt(self, writer: asyncio.StreamWriter, text: bytes) -> None:
        if self.chatty:
            writer.write(b"\r\n[    7.123456] e1000: eth1 NIC Link is Up\r\n")
            for piece in (text[:3], text[3:]):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.2)  # the reader sees a half prompt first
        else:
            writer.write(text)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(self.boot_delay)
        state = "shell" if self.autologin else "login"
        try:
            while True:
                line = await reader.readuntil(b"\r")
                text = line.decode().rstrip("\r")
                # Echo what is typed, except a password (as a real console does).
                writer.write(b"\r\n" if state == "password" else line + b"\n")
                if state == "login":
                    if text:
                        state = "password"
                        await self.prompt(writer, b"Password: ")
                    else:
                        await self.prompt(writer, b"\r\nnewtlab login: ")
                elif state == "password":
                    if self.stall_after_password:
                        writer.write(b"\r\nWelcome\r\nloading profile...")
                        state = "stalled"
                    elif text == self.password:
                        state = "shell"
                        writer.write(b"\r\n# \x1b[6n")
                    else:
                        writer.write(b"\r\nLogin incorrect\r\nnewtlab login: ")
                        state = "login"
                elif state == "stalled":
                    pass  # it never answers again
                else:
                    if text == "exit":
                        break
                    self.commands.append(text)
                    result = subprocess.run(["sh", "-c", text], capture_output=True)
                    writer.write(result.stdout.replace(b"\n", b"\r\n") + b"# \x1b[6n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def run_against(fake: FakeConsole, values: dict[str, str], timeout: float = 10) -> list[str]:
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        results = await bootstrap("127.0.0.1", port, CONSOLE, values, time.monotonic() + timeout)
    return [r.output for r in results]


def test_login_and_commands_with_quoted_values() -> None:
    fake = FakeConsole(boot_delay=0.5)
    values = {
        "ssh_user": "admin",
        "ssh_pass": "p w",
        "ssh_pubkey": "ssh-ed25519 AAAA x@y",
        "hostname": "r1",
    }
    outputs = asyncio.run(run_against(fake, values))
    assert outputs == ["net-up r1", "create admin", "key ssh-ed25519 AAAA x@y"]
    assert fake.commands[1].startswith("echo net-up r1; echo NL")


def test_same_user_skips_user_creation() -> None:
    fake = FakeConsole()
    outputs = asyncio.run(
        run_against(fake, {"ssh_user": "root", "ssh_pubkey": "", "hostname": "h"})
    )
    assert outputs == ["net-up h"]


def test_autologin_console_sets_the_credentials_password_first() -> None:
    fake = FakeConsole(autologin=True)
    values = {"ssh_user": "root", "hostname": "h", "console_user": "root",
              "console_pass": "p w"}  # fmt: skip
    outputs = asyncio.run(run_against(fake, values))
    assert outputs == ["password root:p w", "net-up h"]


def test_password_login_does_not_set_the_password() -> None:
    values = {"ssh_user": "root", "hostname": "h", "console_user": "root", "console_pass": "s"}
    assert asyncio.run(run_against(FakeConsole(), values)) == ["net-up h"]


def test_prompts_in_pieces_between_log_lines() -> None:
    fake = FakeConsole(chatty=True)
    assert asyncio.run(run_against(fake, {"ssh_user": "root", "hostname": "h"})) == ["net-up h"]


def test_a_stall_names_its_step_and_the_last_console_lines() -> None:
    fake = FakeConsole(stall_after_password=True)
    with pytest.raises(RuntimeFailure) as stalled:
        asyncio.run(run_against(fake, {"hostname": "h"}, timeout=3))
    message = str(stalled.value)
    assert "stalled waiting for the shell prompt" in message and "after the password" in message
    assert message.endswith("Welcome\n  loading profile...")
    assert "secret" not in message  # the password typed is not echoed back


def test_wrong_password_is_reported() -> None:
    with pytest.raises(RuntimeFailure, match="refused"):
        asyncio.run(run_against(FakeConsole(password="other"), {"hostname": "h"}))


def test_failing_command_is_reported_with_its_output() -> None:
    console = CONSOLE.model_copy(update={"bootstrap": ["echo oops; false"]})

    async def go() -> None:
        server = await asyncio.start_server(FakeConsole().handle, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            await bootstrap("127.0.0.1", port, console, {"hostname": "h"}, time.monotonic() + 10)

    with pytest.raises(RuntimeFailure, match=r"exit 1\): echo oops; false\noops"):
        asyncio.run(go())


def test_no_console_times_out() -> None:
    async def go() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            await bootstrap("127.0.0.1", port, CONSOLE, {}, time.monotonic() + 2)

    with pytest.raises(RuntimeFailure, match="stalled waiting for the login prompt /login:/"):
        asyncio.run(go())


def test_placeholders_are_shell_quoted() -> None:
    assert fill("echo {{ a }}:{{ b }}", {"a": "x", "b": "it's"}) == "echo x:'it'\"'\"'s'"
