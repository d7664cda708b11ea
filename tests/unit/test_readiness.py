"""Readiness as data: probes from the platform, and the console probe against a real log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from newtlab.agent import layout
from newtlab.agent.paths import lab_dir
from newtlab.errors import RuntimeFailure, SpecErrors
from newtlab.lab import Lab
from newtlab.ops.readiness import _console_shows
from newtlab.runtime.hosts import local_host
from specfactory import linked, write_specs

PLATFORM = {"vm_image": "/i.qcow2", "vm_interface_map": "sequential"}


def _plan_with(
    tmp_path: Path, probes: list[dict[str, object]], post_boot: list[str] | None = None
) -> list[str]:
    devices = linked(("a:Ethernet0", "b:Ethernet0"))
    platforms = {"sw": {**PLATFORM, "vm_readiness": probes, "vm_post_boot": post_boot or []}}
    plan = Lab.load(write_specs(tmp_path / "lab", devices, platforms=platforms)).plan
    return [p.label for p in plan.node("a").readiness]


def test_default_is_an_ssh_login(tmp_path: Path) -> None:
    assert _plan_with(tmp_path, []) == ["SSH login"]


def test_probes_keep_their_order_and_ssh_comes_first_unless_placed(tmp_path: Path) -> None:
    probes = [{"console": "System is ready"}, {"command": "show ip bgp", "match": "Estab"}]
    # Work to do over SSH after boot: a login first.
    assert _plan_with(tmp_path, probes, post_boot=["true"]) == [
        "SSH login", "console shows /System is ready/", "`show ip bgp` matching /Estab/",
    ]  # fmt: skip
    placed = [{"console": "ready"}, {"ssh": True}, {"command": "true", "timeout": 5}]
    assert _plan_with(tmp_path / "b", placed, post_boot=["true"]) == [
        "console shows /ready/", "SSH login", "`true`",
    ]  # fmt: skip
    # None: the list as it is (a NOS reached on its console needs no SSH).
    console_only = [{"console": "Press RETURN to get started"}]
    assert _plan_with(tmp_path / "c", console_only) == [
        "console shows /Press RETURN to get started/"
    ]


@pytest.mark.parametrize(
    "probe", [{}, {"console": "x", "command": "y"}, {"console": "(unclosed"}, {"ssh": False}]
)
def test_a_probe_has_exactly_one_valid_kind(tmp_path: Path, probe: dict[str, object]) -> None:
    with pytest.raises(SpecErrors, match="vm_readiness"):
        _plan_with(tmp_path, [probe])


def test_console_probe_looks_only_after_the_start(tmp_path: Path) -> None:
    console = lab_dir("lab1") / layout.console_log("r1")  # under this test's NEWTLAB_HOME
    console.parent.mkdir(parents=True)
    console.write_bytes(b"previous boot: System is ready\n")
    offset = console.stat().st_size
    host = local_host()

    async def later() -> None:
        await asyncio.sleep(0.5)
        with console.open("ab") as f:
            f.write(b"this boot: System is")
        await asyncio.sleep(0.5)
        with console.open("ab") as f:
            f.write(b" ready\n")

    async def probe(until: float) -> None:
        await _console_shows(host, "lab1", "r1", offset, "System is ready", until)

    with pytest.raises(RuntimeFailure, match="never showed"):
        asyncio.run(probe(time.monotonic() + 0.3))  # the old boot's line does not count

    async def both() -> None:
        await asyncio.gather(later(), probe(time.monotonic() + 10))

    asyncio.run(both())
