"""Serial-console automation against a scripted console that runs real shell commands."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from newtlab.errors import RuntimeFailure
from newtlab.plan.dialogs import console_plan
from newtlab.plan.model import ConsolePlan, DialogStepPlan
from newtlab.plan.nodes import builtin_defaults
from newtlab.runtime.console import bootstrap, clean, fill, redact
from newtlab.spec.models import ConsoleDialog

# The built-in Linux dialog (prompts, ignore and fail patterns) with commands
# that show what ran.
CONSOLE = console_plan(
    None,
    {
        **builtin_defaults()["consoles"]["linux"],
        "bootstrap": ["echo net-up {{ hostname }}"],
        "create_user": ["echo create {{ ssh_user }}"],
        "install_key": ["echo key {{ ssh_pubkey }}"],
        "set_password": ["echo password {{ console_user }}:{{ console_pass }}"],
    },
    "root",
    "secret",
    "platforms.json",
    "platforms.test.vm_console",
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
        self.chatty = chatty  # prompts in pieces with a kernel log line in the middle
        self.stall_after_password = stall_after_password
        self.commands: list[str] = []

    async def prompt(self, writer: asyncio.StreamWriter, text: bytes) -> None:
        if self.chatty:
            log = b"[    7.123456] e1000: eth1 NIC Link is Up\r\n"
            for piece in (b"Loading 10%\rLoading 99%\r\n" + text[:3], log, text[3:], log[:9]):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.2)  # the reader sees a half prompt first
            writer.write(log[9:])  # a log line after the prompt, in two reads
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


async def run_against(
    fake: FakeConsole,
    values: dict[str, str],
    timeout: float = 10,
    console: ConsolePlan = CONSOLE,
    steps: list[str] | None = None,
) -> list[str]:
    step = steps.append if steps is not None else lambda _: None
    with tempfile.TemporaryDirectory() as directory:  # a console on a Unix socket, as QEMU's
        path = os.path.join(directory, "r1.console")
        server = await asyncio.start_unix_server(fake.handle, path)
        async with server:
            results = await bootstrap(path, console, values, time.monotonic() + timeout, step)
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
    console = CONSOLE.model_copy(update={"password": "p w"})
    outputs = asyncio.run(run_against(fake, {"ssh_user": "root", "hostname": "h"}, console=console))
    assert outputs == ["password root:p w", "net-up h"]


def progress_lines(password: str, values: dict[str, str]) -> list[str]:
    """The commands deploy's progress shows for an autologin console with ``password``."""
    console = CONSOLE.model_copy(update={"password": password})
    steps: list[str] = []
    asyncio.run(run_against(FakeConsole(autologin=True), values, console=console, steps=steps))
    return [s for s in steps if not s.startswith("waiting")]


def test_progress_shows_each_command_as_typed_without_secrets() -> None:
    """Deploy's progress lines: no template source, no password, the key by its name."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE x@y"
    commands = progress_lines("p w", {"ssh_user": "admin", "hostname": "h", "ssh_pubkey": key})
    assert commands == ["echo password root:******", "echo net-up h", "echo create admin",
                        "echo key <the lab's public key>"]  # fmt: skip


def test_a_password_that_is_also_a_word_of_a_command_leaves_the_command_readable() -> None:
    """The host image's password is "newtlab": its commands are newtlab-net-up, …"""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE newtlab-line3"
    values = {"ssh_user": "admin", "hostname": "newtlab-net-up", "ssh_pubkey": key}
    assert progress_lines("newtlab", values) == [
        "echo password root:******", "echo net-up newtlab-net-up",
        "echo create admin", "echo key <the lab's public key>",
    ]  # fmt: skip


def test_redact_hides_a_secret_standing_as_a_word_of_its_own() -> None:
    text = "echo root:newtlab | chpasswd; newtlab-net-up; newtlab"
    assert redact(text, ["newtlab"]) == "echo root:****** | chpasswd; newtlab-net-up; ******"


def test_password_login_does_not_set_the_password() -> None:
    values = {"ssh_user": "root", "hostname": "h"}
    assert asyncio.run(run_against(FakeConsole(), values)) == ["net-up h"]


def test_prompts_in_pieces_between_log_lines() -> None:
    fake = FakeConsole(chatty=True)
    assert asyncio.run(run_against(fake, {"ssh_user": "root", "hostname": "h"})) == ["net-up h"]


def test_a_stall_names_its_step_and_the_last_console_lines() -> None:
    fake = FakeConsole(stall_after_password=True)
    with pytest.raises(RuntimeFailure) as stalled:
        asyncio.run(run_against(fake, {"hostname": "h"}, timeout=3))
    message = str(stalled.value)
    assert "stalled waiting for step 'shell'" in message
    assert message.endswith("Welcome\n  loading profile...")
    assert "secret" not in message  # the password typed is not echoed back


def test_wrong_password_ends_the_dialog_on_its_fail_pattern() -> None:
    with pytest.raises(RuntimeFailure) as failed:
        asyncio.run(run_against(FakeConsole(password="other"), {"hostname": "h"}, timeout=30))
    message = str(failed.value)
    assert "printed 'Login incorrect'" in message and "step 'shell'" in message
    assert "vm_credentials" in message


def test_failing_command_is_reported_with_its_output() -> None:
    console = CONSOLE.model_copy(update={"bootstrap": ["echo oops; false"]})

    async def go() -> None:
        server = await asyncio.start_server(FakeConsole().handle, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            await bootstrap(("127.0.0.1", port), console, {"hostname": "h"}, time.monotonic() + 10)

    with pytest.raises(RuntimeFailure, match=r"exit 1\): echo oops; false\noops"):
        asyncio.run(go())


def test_no_console_times_out() -> None:
    async def go() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            await bootstrap(("127.0.0.1", port), CONSOLE, {}, time.monotonic() + 2)

    with pytest.raises(RuntimeFailure, match="stalled waiting for step 'login' /login:/"):
        asyncio.run(go())


def test_placeholders_are_shell_quoted() -> None:
    assert fill("echo {{ a }}:{{ b }}", {"a": "x", "b": "it's"}) == "echo x:'it'\"'\"'s'"


def test_clean_shows_what_a_terminal_would() -> None:
    ignore = [re.compile(p) for p in CONSOLE.ignore]
    raw = "\x1b[1mboot\x1b[0m\r\nLoading 10%\rLoading 99%\r\nlo[    3.5] eth0: up\r\ngin: "
    assert clean(raw, ignore) == "boot\nLoading 99%\nlogin: "
    assert clean("[  OK  ] Started getty.\r\nPassword: ", ignore) == "Password: "
    assert clean("half a line\r") == "half a line"  # its \n may be in the next read


class RouterConsole:
    """An IOS-like CLI: an optional setup question, Press RETURN, then > and #.

    ``drop_enable`` ignores the first ``enable`` typed (a console not ready yet).
    """

    def __init__(self, setup_question: bool, drop_enable: bool = False) -> None:
        self.setup_question = setup_question
        self.drop_enable = drop_enable
        self.typed: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        question = b"Would you like to enter the initial configuration dialog? [yes/no]: "
        state = "setup" if self.setup_question else "return"
        writer.write(question if state == "setup" else b"Press RETURN to get started!\r\n")
        try:
            while True:
                line = (await reader.readuntil(b"\r")).decode().strip()
                self.typed.append(line)
                writer.write(line.encode() + b"\r\n")
                if state == "setup":
                    if line == "no":
                        state = "return"
                        writer.write(b"\r\n\r\nPress RETURN to get started!\r\n\r\n")
                    else:
                        writer.write(b"% Please answer 'yes' or 'no'.\r\n" + question)
                elif state == "return":
                    state = "user"
                    writer.write(b"Router>")
                elif state == "user" and line == "enable":
                    if self.drop_enable:
                        self.drop_enable = False
                        continue
                    state = "enabled"
                    writer.write(b"Router#")
                else:
                    writer.write(b"Router" + (b"#" if state == "enabled" else b">"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


ROUTER = console_plan(
    None,
    {
        **builtin_defaults()["consoles"]["linux"],
        "login": [
            {
                "name": "setup",
                "expect": r"initial configuration dialog\? \[yes/no\]:",
                "send": "no",
                "optional": True,
            },
            {
                "name": "press-return",
                "expect": "Press RETURN to get started!",
                "send": "",
                "optional": True,
            },
            {"name": "user-exec", "expect": "Router>", "send": "enable"},
            {"name": "privileged", "expect": "Router#", "timeout": 1, "retries": 2},
        ],
        **{k: [] for k in ("bootstrap", "create_user", "install_key", "set_password")},
    },
    "",
    "",
    "platforms.json",
    "platforms.router.vm_console",
)


@pytest.mark.parametrize("setup_question", [True, False])
def test_a_dialog_of_steps_skips_optional_prompts_that_do_not_show(setup_question: bool) -> None:
    fake = RouterConsole(setup_question)
    assert asyncio.run(run_against(fake, {}, console=ROUTER)) == []  # type: ignore[arg-type]
    assert fake.typed[-2:] == ["enable", "exit"]
    assert ("no" in fake.typed) == setup_question


def test_a_step_that_times_out_types_the_previous_input_again() -> None:
    fake = RouterConsole(setup_question=False, drop_enable=True)
    asyncio.run(run_against(fake, {}, console=ROUTER))  # type: ignore[arg-type]
    assert fake.typed.count("enable") == 2


def test_retries_run_out_with_the_step_named() -> None:
    console = ROUTER.model_copy(
        update={
            "login": [
                *ROUTER.login[:3],
                DialogStepPlan(name="never", expect="Router\\(x\\)#", timeout=0.5, retries=1),
            ]
        }
    )
    with pytest.raises(RuntimeFailure, match=r"stalled waiting for step 'never'.*\n  Router>"):
        asyncio.run(run_against(RouterConsole(False), {}, console=console))  # type: ignore[arg-type]


def test_the_readme_dialog_runs_against_a_router_console() -> None:
    page = (Path(__file__).parents[2] / "docs" / "boot.md").read_text()
    section = page.split("## Console dialogs", 1)[1]
    example = section.split("```json\n", 1)[1].split("```", 1)[0]
    dialog = ConsoleDialog.model_validate(json.loads("{" + example + "}")["vm_console"])
    defaults = builtin_defaults()["consoles"]["linux"]
    console = console_plan(dialog, defaults, "admin", "pw", "platforms.json", "x")
    for setup_question in (True, False):
        fake = RouterConsole(setup_question, drop_enable=setup_question)
        asyncio.run(run_against(fake, {}, timeout=20, console=console))  # type: ignore[arg-type]
        assert fake.typed.count("enable") == 1 + setup_question and fake.typed[-1] == "exit"
