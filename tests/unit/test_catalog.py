"""The platform catalog: every entry sane, and its console dialog run against its NOS's prompts.

Each ``consoles/<entry>.json`` is a transcript of what that NOS prints on its
serial console and what a user types in reply, written from its
documentation and from well-known lab tools (each file says where from).
``ScriptedConsole`` plays it: it prints a prompt, reprints it when Enter is
pressed early (as real consoles do) and fails on anything typed that the
transcript does not expect.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from newtlab.plan.dialogs import console_plan
from newtlab.plan.nodes import builtin_defaults
from newtlab.runtime.console import bootstrap
from newtlab.spec.catalog import catalog
from newtlab.spec.models import PlatformSpec

TRANSCRIPTS = Path(__file__).parent / "consoles"
ENTRIES = sorted(catalog())


def test_every_entry_has_a_transcript() -> None:
    assert sorted(p.stem for p in TRANSCRIPTS.glob("*.json")) == ENTRIES


@pytest.mark.parametrize("name", ENTRIES)
def test_each_entry_is_sane(name: str) -> None:
    entry = catalog()[name]
    platform = PlatformSpec.model_validate(entry)
    assert platform.description and platform.vm_image
    assert platform.vm_memory is not None and 64 <= platform.vm_memory <= 32768
    assert platform.vm_cpus is not None and 1 <= platform.vm_cpus <= 8
    assert platform.vm_nic_driver and platform.vm_disk_driver in ("virtio", "ide", "sata", "scsi")
    assert platform.vm_boot_timeout is not None and platform.vm_boot_timeout >= 60
    assert platform.vm_credentials is not None
    most, first = platform.vm_max_nics, platform.vm_first_data_nic
    assert most is not None and first is not None and 2 <= most <= 128 and 1 <= first < most
    if platform.vm_interface_map == "custom":
        table = platform.vm_interface_map_custom or {}
        assert sorted(table.values()) == list(range(first, most)), "the map covers every data NIC"
    else:
        assert platform.vm_interface_map in ("linux", "sequential", "stride-4")
    # Its dialog makes a valid plan (regexes and templates checked there).
    defaults = builtin_defaults()
    kind = defaults["device_types"][platform.device_type]["console"]
    console_plan(platform.vm_console, defaults["consoles"][kind], "u", "p", "catalog", name)
    assert platform.source, "say where the values come from"
    assert isinstance(entry.get("verified"), bool)


class ScriptedConsole:
    """Plays a transcript: ``[{"output": text, "input": expected line or null}, ...]``."""

    def __init__(self, script: list[dict[str, Any]]) -> None:
        self.script = script
        self.unexpected: list[str] = []
        self.finished = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for exchange in self.script:
                output = exchange["output"].encode()
                writer.write(output)
                await writer.drain()
                wanted = exchange["input"]
                if wanted is None:
                    break
                while True:
                    line = (await reader.readuntil(b"\r")).decode().rstrip("\r")
                    writer.write(b"\r\n")  # the echo's line end (passwords are not echoed)
                    if line == wanted:
                        break
                    if line:
                        self.unexpected.append(line)
                        return
                    writer.write(output.lstrip(b"\r\n"))  # Enter at a prompt: shown again
                    await writer.drain()
            self.finished = True
            await reader.read()  # until newtlab hangs up
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("name", ENTRIES)
def test_each_entry_logs_in_on_its_scripted_console(name: str) -> None:
    transcript = json.loads((TRANSCRIPTS / f"{name}.json").read_text())
    assert transcript["source"], "say where the prompts come from"
    platform = PlatformSpec.model_validate(catalog()[name])
    defaults = builtin_defaults()
    kind = defaults["device_types"][platform.device_type]["console"]
    creds = platform.vm_credentials
    assert creds is not None
    console = console_plan(
        platform.vm_console, defaults["consoles"][kind], creds.user, creds.password, "catalog", name
    )
    # Only the login: the commands after it are checked by the VM tests of each image.
    console = console.model_copy(
        update={k: [] for k in ("set_password", "bootstrap", "create_user", "install_key")}
    )
    if not console.login:  # nothing is typed: the console is never even connected to
        assert [e["input"] for e in transcript["script"]] == [None]
        assert asyncio.run(bootstrap(("127.0.0.1", 9), console, {}, time.monotonic() + 1)) == []
        return
    fake = ScriptedConsole(transcript["script"])

    async def go() -> None:
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            await bootstrap(("127.0.0.1", port), console, {"hostname": "r1"}, time.monotonic() + 20)

    asyncio.run(go())
    assert fake.unexpected == [] and fake.finished
    # The last prompt is where a console push would type the configuration.
    config = platform.vm_startup_config
    if config is not None and config.method == "console":
        assert re.search(config.prompt + r"\s*\Z", transcript["script"][-1]["output"])


def test_the_readme_lists_every_entry() -> None:
    page = (Path(__file__).parents[2] / "docs" / "platforms.md").read_text()
    section = page.split("## Platform catalog", 1)[1].split("\n## ", 1)[0]
    assert [
        line.split("`")[1] for line in section.splitlines() if line.startswith("| `")
    ] == ENTRIES
