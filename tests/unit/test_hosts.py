"""Which hosts of a plan are this machine, and how server addresses are resolved."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from newtlab.errors import PlanError
from newtlab.lab import Lab
from newtlab.runtime.hosts import all_settled, resolve_addresses, this_machine, used_hosts
from specfactory import linked, write_specs


def test_a_server_with_one_of_this_machines_addresses_is_this_machine(tmp_path: Path) -> None:
    servers = [{"name": "here", "address": "127.0.0.1"}, {"name": "far", "address": "192.0.2.9"}]
    profiles = {"a": {"platform": "sw", "vm_host": "here"}, "b": {"platform": "sw"}}
    spec = write_specs(
        tmp_path / "lab", linked(("a:Ethernet0", "b:Ethernet0")), profiles=profiles,
        newtlab={"servers": servers},
    )  # fmt: skip
    plan = Lab.load(spec).plan
    assert this_machine(plan) == ["here"]
    assert used_hosts(plan) == ["far", "here"]


def test_names_resolve_once_and_a_bad_one_says_which_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    real = socket.getaddrinfo

    def lookup(host: str, *args: Any) -> Any:  # a resolver that knows one name
        asked.append(host)
        if host == "lab-1.example":
            return real("10.1.2.3", *args)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    found = resolve_addresses({"s1": "10.0.0.1", "s2": "lab-1.example"})
    assert found == {"lab-1.example": "10.1.2.3"} and asked == ["lab-1.example"]  # IPs: as given
    expected = r"server s3: cannot resolve its address 'no\.such\.host' \(Name or service"
    with pytest.raises(PlanError, match=expected):
        resolve_addresses({"s3": "no.such.host"})


def test_a_failure_is_raised_only_when_the_others_are_done() -> None:
    finished: list[str] = []

    async def fails() -> str:
        raise OSError("No space left on device")

    async def slow(name: str) -> str:
        await asyncio.sleep(0.05)
        finished.append(name)
        return name

    with pytest.raises(OSError, match="No space"):
        asyncio.run(all_settled([slow("a"), fails(), slow("b")]))
    assert sorted(finished) == ["a", "b"]  # both ran to their end before the raise
    assert asyncio.run(all_settled([slow("c"), slow("d")])) == ["c", "d"]
