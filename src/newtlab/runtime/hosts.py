"""Which ``Host`` runs each part of a plan."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import psutil

from ..errors import NotAvailableError, PlanError
from ..plan.model import LOCAL_HOST, Plan
from .host import Host
from .local import LocalHost

Hosts = dict[str, Host]  # plan host name → its Host
T = TypeVar("T")


async def each_host(hosts: Hosts, work: Callable[[Host], Awaitable[T]]) -> list[T]:
    """``work(host)`` on every host at once; the results in the hosts' order."""
    return list(await asyncio.gather(*(work(host) for host in hosts.values())))


def local_addresses() -> set[str]:
    """Every IPv4 address of this machine (and the names of its loopback)."""
    addresses = {"127.0.0.1", "0.0.0.0", "localhost"}
    for entries in psutil.net_if_addrs().values():
        addresses.update(e.address for e in entries if e.family == socket.AF_INET)
    return addresses


def used_hosts(plan: Plan) -> list[str]:
    """The plan's hosts that run a VM or a bridge, sorted."""
    return sorted({n.host for n in plan.nodes} | set(plan.bridges))


def this_machine(plan: Plan) -> list[str]:
    """The plan's hosts that are this machine (``local``, or a server with one of its addresses)."""
    mine = local_addresses()
    return [h.name for h in plan.hosts if h.name == LOCAL_HOST or h.address in mine]


@contextlib.asynccontextmanager
async def open_hosts(plan: Plan) -> AsyncIterator[Hosts]:
    """A ``Host`` for every host the plan uses, open for the duration of one command."""
    local = this_machine(plan)
    if len(local) > 1:
        raise PlanError(
            f"servers {', '.join(local)} are all this machine — give each server its own "
            "machine, or use one of them"
        )
    remote = [h for h in used_hosts(plan) if h not in local]
    if remote:
        server = next(h for h in plan.hosts if h.name == remote[0])
        raise NotAvailableError(
            f"server {server.name} ({server.address}) is not this machine: running part of a "
            "lab on another server (over SSH) is not available yet — place every node on a "
            "server whose address is this machine's"
        )
    yield {name: LocalHost(name) for name in local if name in used_hosts(plan)}


@contextlib.asynccontextmanager
async def open_local() -> AsyncIterator[Hosts]:
    """This machine alone: for a lab whose state (and so its plan) is lost."""
    yield {LOCAL_HOST: LocalHost()}
