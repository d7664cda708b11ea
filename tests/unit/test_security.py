"""Nothing a spec names reaches a shell or a path unchecked; secrets stay private."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from newtlab.runtime.ssh import create_key_pair
from specfactory import SWITCH_PLATFORM, linked, run_cli, write_specs

INJECTIONS = ["r1;reboot", "$(id)", "../etc", "-rf", "a b", "r1`id`", "x\nid", "r1|id", "'q'"]


@pytest.mark.parametrize("bad", INJECTIONS)
def test_a_device_name_that_would_inject_is_a_spec_error(tmp_path: Path, bad: str) -> None:
    devices = {bad: {"interfaces": {}}, "b": {"interfaces": {}}}
    write_specs(tmp_path, devices)
    result = run_cli("plan", "-S", str(tmp_path), "--no-probe")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "letters, digits" in result.stderr


@pytest.mark.parametrize("bad", INJECTIONS)
def test_a_lab_name_that_would_inject_is_refused(tmp_path: Path, bad: str) -> None:
    write_specs(tmp_path, linked(("a:Ethernet0", "b:Ethernet0")))
    result = run_cli("plan", "-S", str(tmp_path), "--no-probe", "--name", bad)
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize("bad", ["eth1;id", "eth1$(id)", "eth1 x", "eth1`id`", "e:1"])
def test_an_interface_name_that_would_inject_is_a_spec_error(tmp_path: Path, bad: str) -> None:
    devices = {"a": {"interfaces": {bad: {"link": "b:Ethernet0"}}},
               "b": {"interfaces": {"Ethernet0": {"link": f"a:{bad}"}}}}  # fmt: skip
    write_specs(tmp_path, devices)
    result = run_cli("plan", "-S", str(tmp_path), "--no-probe")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_credentials_reach_commands_quoted(tmp_path: Path) -> None:
    """A password with shell syntax goes into console commands as one quoted word."""
    platform = {**SWITCH_PLATFORM, "vm_credentials": {"user": "admin", "pass": "p'; reboot; '"}}
    write_specs(tmp_path, linked(("a:Ethernet0", "b:Ethernet0")), platforms={"sw": platform})
    plan = json.loads(run_cli("plan", "-S", str(tmp_path), "--json", "--no-probe").stdout)
    assert plan["nodes"][0]["console"]["password"] == "p'; reboot; '"
    from newtlab.runtime.console import fill

    command = fill("echo {{ console_user }}:{{ console_pass }} | chpasswd",
                   {"console_user": "admin", "console_pass": "p'; reboot; '"})  # fmt: skip
    assert command == "echo admin:'p'\"'\"'; reboot; '\"'\"'' | chpasswd"


def test_the_lab_key_is_private_from_the_start(tmp_path: Path) -> None:
    key = tmp_path / "labs" / "l1" / "ssh" / "id_ed25519"
    create_key_pair(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
