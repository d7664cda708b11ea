"""The CLI: plan output, port probe, not-yet commands, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from specfactory import FIXTURES, linked, run_cli, write_specs


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_plan_table_and_json() -> None:
    spec = str(FIXTURES / "3node-ngdp" / "specs")
    table = run_cli("plan", "-S", spec, "--no-probe")
    assert table.returncode == 0, table.stderr
    assert "hostvm-0" in table.stdout and "spine:Ethernet0" in table.stdout
    data = json.loads(run_cli("plan", "-S", spec, "--json", "--no-probe", "--accel", "tcg").stdout)
    assert data["accel"] == "tcg"
    dials = [side["dial"] for link in data["bridges"]["local"]["links"] for side in link.values()
             if isinstance(side, dict)]  # fmt: skip
    assert dials and all(d.startswith("unix:qemu/") for d in dials)  # every VM NIC


def test_probe_reports_every_conflict_with_purpose(tmp_path: Path, held_port: int) -> None:
    with socket.socket() as second:
        second.bind(("127.0.0.1", 0))
        second.listen(1)
        other = second.getsockname()[1]
        devices = linked(("a:Ethernet0", "b:Ethernet0"))
        # a's SSH port is held, and a's TCP console port too.
        spec = write_specs(
            tmp_path / "lab",
            devices,
            newtlab={
                "ssh_port_base": held_port,
                "link_port_base": 50000,
                "console_port_base": other,
                "console": "tcp",
            },
        )
        result = run_cli("plan", "-S", str(spec))
    assert result.returncode == 1
    assert f"a SSH: port {held_port} in use" in result.stderr
    assert f"a console: port {other} in use" in result.stderr
    assert "Traceback" not in result.stderr
    skipped = run_cli("plan", "-S", str(spec), "--no-probe")
    assert skipped.returncode == 0


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["status"], "no lab is deployed"),
        (["destroy", "ghostlab"], "lab 'ghostlab' not found on this machine: nothing to destroy"),
        (["ssh", "ghost"], "no node 'ghost': no lab is deployed — `newtlab deploy -S DIR`"),
        (["console", "ghost"], "no node 'ghost': no lab is deployed — `newtlab deploy -S DIR`"),
        (["stop", "ghost"], "no node 'ghost': no lab is deployed — `newtlab deploy -S DIR`"),
        (["start", "ghost"], "no node 'ghost': no lab is deployed — `newtlab deploy -S DIR`"),
        (["logs", "ghost"], "no node 'ghost': no lab is deployed — `newtlab deploy -S DIR`"),
        (["provision"], "no lab is deployed"),
        (["deploy"], "pass -S DIR"),
        (["destroy", "bad name"], "lab name 'bad name' is not allowed"),
        (
            ["image", "build", "vjunos"],
            "unknown image 'vjunos': newtlab builds 'host' and 'router'",
        ),
        (["image", "build", "routr"], "'router' — did you mean router?"),
    ],
)
def test_commands_without_a_lab_explain_themselves(command: list[str], message: str) -> None:
    result = run_cli(*command)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_list_with_no_labs() -> None:
    assert json.loads(run_cli("list", "--json").stdout) == []


def test_plan_without_specs_is_a_clear_error() -> None:
    result = run_cli("plan")
    assert result.returncode == 1 and "pass -S DIR" in result.stderr


def test_version() -> None:
    result = run_cli("version")
    assert result.returncode == 0 and result.stdout.startswith("newtlab ")


def test_an_unreachable_server_stops_deploy_before_anything_starts(tmp_path: Path) -> None:
    servers = [{"name": "here", "address": "127.0.0.1"}, {"name": "far", "address": "198.51.100.7"}]
    profiles = {
        "a": {"platform": "sw", "vm_host": "here"},
        "b": {"platform": "sw", "vm_host": "far"},
    }
    spec = write_specs(
        tmp_path / "lab",
        linked(("a:Ethernet0", "b:Ethernet0")),
        profiles=profiles,
        newtlab={"servers": servers},
    )
    result = run_cli("deploy", "-S", str(spec))
    assert result.returncode == 1
    assert "server far (198.51.100.7:22): cannot connect" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (Path(os.environ["NEWTLAB_HOME"]) / "labs" / "lab").exists()


def test_debug_shows_the_traceback_and_only_then(tmp_path: Path) -> None:
    plain = run_cli("status", "nosuchlab")
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    debug = run_cli("--debug", "status", "nosuchlab")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "lab 'nosuchlab' is not deployed" in debug.stderr
