"""Reaching a server: host keys trusted once and then checked, logins refused clearly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from newtlab.errors import RuntimeFailure
from newtlab.plan.model import HostPlan
from newtlab.runtime.transports.remote import SshTransport
from testservers import TestServer, servers

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TestServer]:
    with servers(1, tmp_path / "servers") as (found,):
        yield found


def plan_for(server: TestServer, identity: Path | None = None) -> HostPlan:
    return HostPlan(
        name=server.name,
        address=server.address,
        ip=server.address,
        user=server.user,
        identity_file=str(identity or server.identity_file),
    )


async def reach(server: HostPlan, store: Path) -> str:
    host = await SshTransport.open(server, store)
    try:
        return (await host.run(["hostname"])).output.strip()
    finally:
        await host.close()


def test_a_new_server_is_trusted_once_and_then_checked(server: TestServer, tmp_path: Path) -> None:
    store = tmp_path / "known_hosts"
    assert asyncio.run(reach(plan_for(server), store)) == server.name
    (recorded,) = store.read_text().splitlines()
    assert recorded.startswith(f"{server.address} ssh-")
    assert asyncio.run(reach(plan_for(server), store)) == server.name
    assert store.read_text().splitlines() == [recorded]  # known now: not recorded again

    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    store.write_text(f"{server.address} {impostor}")
    with pytest.raises(RuntimeFailure) as changed:
        asyncio.run(reach(plan_for(server), store))
    message = str(changed.value)
    assert "its SSH host key changed" in message and f"ssh-keygen -R '{server.address}'" in message


def test_a_refused_login_says_what_to_set(server: TestServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    with pytest.raises(RuntimeFailure, match=r"SSH login refused .* set user and identity_file"):
        asyncio.run(reach(plan_for(server, stranger), tmp_path / "known_hosts"))
