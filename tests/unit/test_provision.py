"""Provisioning runs a command per device, in parallel, and collects every failure."""

from __future__ import annotations

import json
import shutil

import pytest

from newtlab.state import LabState
from specfactory import FIXTURES, run_cli
from specfactory import deployed as deployed_state


def deployed(example: str) -> LabState:
    return deployed_state(FIXTURES / example / "specs")


def test_every_failure_is_collected() -> None:
    deployed("3node-ngdp")
    result = run_cli(
        "provision",
        "3node-ngdp",
        "--parallel",
        "3",
        "--json",
        "--command",
        "sh -c 'echo {device} in {lab}; test {device} != leaf2'",
    )
    assert result.returncode == 1
    reports = {r["device"]: r for r in json.loads(result.stdout)}
    # Host VMs are not provisioned; each switch got its own command line.
    assert sorted(reports) == ["leaf1", "leaf2", "spine"]
    assert (
        reports["leaf1"]["returncode"] == 0
        and reports["leaf1"]["output"] == "leaf1 in 3node-ngdp\n"
    )
    assert reports["leaf2"]["returncode"] == 1
    assert "provisioning failed on 1 of 3 devices" in result.stderr
    assert "leaf2: exit 1" in result.stderr


def test_chosen_devices_and_a_missing_command() -> None:
    deployed("4node-ngdp")
    result = run_cli("provision", "-d", "spine1", "--command", "no-such-newtron {device}")
    assert result.returncode == 1
    assert (
        "spine1: exit 127" in result.stderr
        and "no-such-newtron: command not found" in result.stderr
    )
    unknown = run_cli("provision", "-d", "spine9")
    assert unknown.returncode == 1 and "not a device of lab 4node-ngdp: spine9" in unknown.stderr


def test_default_command_is_newtron() -> None:
    if shutil.which("newtron"):
        pytest.skip("newtron is installed here: it would really provision")
    state = deployed("1node-vs")
    result = run_cli("provision", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)[0]
    assert report["device"] == "switch1" and report["returncode"] == 127
    assert report["output"] == "newtron: command not found"
    assert state.spec_dir.endswith("1node-vs/specs")
