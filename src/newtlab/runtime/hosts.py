"""Which ``Host`` runs each part of a plan, and what each host is made of.

This is where the seams are chosen: a host's transport (this machine, or a
server over SSH), its VM engine and its datapath. A host runs its VMs with
``QemuEngine`` unless its plan says libvirt (``LibvirtEngine``), and joins its
links with ``NewtlinkDatapath``; another engine or datapath is one more choice
in ``host_for``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import psutil

from ..errors import PlanError, RuntimeFailure
from ..home import newtlab_home
from ..plan.model import LOCAL_HOST, HostPlan, Plan
from .datapaths.newtlink import NewtlinkDatapath
from .engines.base import VmEngine
from .engines.every import EveryEngine
from .engines.libvirt import LibvirtEngine, checked_ssh
from .engines.qemu import QemuEngine
from .host import Host
from .transports.base import Transport
from .transports.local import LocalTransport
from .transports.remote import SshTransport

T = TypeVar("T")


def host_for(transport: Transport, plan: HostPlan | None = None, *, here: bool = False) -> Host:
    """The host a transport reaches, with the VM engine its plan names (QEMU started by
    newtlab unless it says libvirt) and the datapath it uses; ``here``: it is this
    machine, whose libvirt daemons are remembered once they hold a domain."""
    engine: VmEngine = QemuEngine(transport)
    if plan is not None and plan.engine == "libvirt":
        uri = checked_ssh(plan.libvirt_uri, known_hosts_file())
        engine = LibvirtEngine(transport, uri, remember_libvirt if here else None)
    return Host(transport, engine, NewtlinkDatapath(transport))


def local_host(name: str = LOCAL_HOST, plan: HostPlan | None = None) -> Host:
    """This machine, under the plan's name for it."""
    return host_for(LocalTransport(name), plan, here=True)


def libvirt_record() -> Path:
    """The libvirt daemons of this machine where this home's labs defined a domain, a URI a
    line: where a lab whose state is lost may still have domains."""
    return newtlab_home() / "libvirt-uris"


def remembered_libvirt() -> list[str]:
    record = libvirt_record()
    return record.read_text().split() if record.exists() else []


def remember_libvirt(uri: str) -> None:
    if uri not in remembered_libvirt():
        record = libvirt_record()
        record.parent.mkdir(parents=True, exist_ok=True)
        with record.open("a") as handle:
            handle.write(uri + "\n")


def any_engine_host() -> Host:
    """This machine with every engine that may run a VM of this home here: newtlab's QEMUs
    and each libvirt daemon its labs used (for destroy without a plan, and prune)."""
    transport = LocalTransport(LOCAL_HOST)
    uris = remembered_libvirt()
    if not uris:
        return host_for(transport)
    engines: list[VmEngine] = [
        QemuEngine(transport),
        *(LibvirtEngine(transport, uri) for uri in uris),
    ]
    return Host(transport, EveryEngine(engines), NewtlinkDatapath(transport))


class Hosts(dict[str, Host]):
    """The open hosts of a plan, by name; ``unreachable``: servers that could not be
    reached (only when opened with ``partial``), with why."""

    def __init__(self, hosts: dict[str, Host], unreachable: dict[str, str] | None = None) -> None:
        super().__init__(hosts)
        self.unreachable = unreachable or {}


async def all_settled(work: Iterable[Awaitable[T]]) -> list[T]:
    """Each awaited at once and to its end; the results in order. The first failure is
    raised only when all are done, so nothing still runs while the caller cleans up (a
    plain gather leaves the others running: one writing into a directory being removed)."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]  # no exception among them


async def each_host(hosts: Hosts, work: Callable[[Host], Awaitable[T]]) -> list[T]:
    """``work(host)`` on every host at once; the results in the hosts' order."""
    return await all_settled(work(host) for host in hosts.values())


def local_addresses() -> set[str]:
    """Every IPv4 address of this machine (and the names of its loopback)."""
    addresses = {"127.0.0.1", "0.0.0.0", "localhost"}
    for entries in psutil.net_if_addrs().values():
        addresses.update(e.address for e in entries if e.family == socket.AF_INET)
    return addresses


def resolve_addresses(servers: Mapping[str, str]) -> dict[str, str]:
    """IPv4 address of each server address that is a name (server name → address given).

    Looked up once per command, so every bind, dial and allow list agrees.
    """
    resolved = {}
    for name, address in servers.items():
        try:
            ipaddress.ip_address(address)
            continue
        except ValueError:
            pass
        try:
            info = socket.getaddrinfo(address, None, socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            raise PlanError(
                f"server {name}: cannot resolve its address {address!r} ({exc.strerror or exc})"
                " — fix newtlab.servers in topology.json, or give an IP"
            ) from None
        resolved[address] = str(info[0][4][0])
    return resolved


def known_hosts_file() -> Path:
    """Where newtlab records the host keys of servers it met first (trust on first use)."""
    return newtlab_home() / "known_hosts"


def used_hosts(plan: Plan) -> list[str]:
    """The plan's hosts that run a VM or a bridge, sorted."""
    return sorted({n.host for n in plan.nodes} | set(plan.bridges))


def this_machine(plan: Plan) -> list[str]:
    """The plan's hosts that are this machine (``local``, or a server with one of its addresses)."""
    mine = local_addresses()
    return [h.name for h in plan.hosts if h.name == LOCAL_HOST or h.ip in mine]


@contextlib.asynccontextmanager
async def open_hosts(
    plan: Plan, *, only: Collection[str] | None = None, partial: bool = False
) -> AsyncIterator[Hosts]:
    """A ``Host`` for every host the plan uses (or ``only`` those), for one command.

    This machine (``local``, or a server with one of its addresses) is reached
    directly; every other server gets one SSH connection, all opened in
    parallel. A server that cannot be reached is an error naming every such
    server — or, with ``partial``, is left out and listed in ``unreachable``.
    """
    local = this_machine(plan)
    if len(local) > 1:
        raise PlanError(
            f"servers {', '.join(local)} are all this machine — give each server its own "
            "machine, or use one of them"
        )
    used = [h for h in used_hosts(plan) if only is None or h in only]
    servers = [h for h in plan.hosts if h.name in used and h.name not in local]
    mine = [h for h in plan.hosts if h.name in local and h.name in used]
    async with _opened(mine, servers, partial) as hosts:
        yield hosts


@contextlib.asynccontextmanager
async def open_servers(servers: Collection[HostPlan]) -> AsyncIterator[Hosts]:
    """This machine (``local``) and every one of ``servers`` that is another machine;
    the unreachable ones listed in ``unreachable``."""
    mine = local_addresses()
    others = {s.name: s for s in servers if s.ip not in mine}
    async with _opened([], list(others.values()), partial=True, any_engine=True) as hosts:
        yield hosts


@contextlib.asynccontextmanager
async def _opened(
    local: list[HostPlan], servers: list[HostPlan], partial: bool, any_engine: bool = False
) -> AsyncIterator[Hosts]:
    """This machine as each of ``local`` (``any_engine``: as ``any_engine_host``) and an
    SSH connection to each server."""
    opened = await asyncio.gather(
        *(SshTransport.open(server, known_hosts_file()) for server in servers),
        return_exceptions=True,
    )
    found: dict[str, Host] = {host.name: local_host(host.name, host) for host in local}
    if any_engine:
        found[LOCAL_HOST] = any_engine_host()
    unreachable = {}
    for server, result in zip(servers, opened, strict=True):
        if isinstance(result, SshTransport):
            found[server.name] = host_for(result, server)
        elif isinstance(result, RuntimeFailure):
            unreachable[server.name] = str(result)
        else:
            raise result
    try:
        if unreachable and not partial:
            raise RuntimeFailure("\n".join(unreachable.values()))
        yield Hosts(dict(sorted(found.items())), unreachable)
    finally:
        await asyncio.gather(*(h.close() for h in found.values()), return_exceptions=True)


@contextlib.asynccontextmanager
async def open_local() -> AsyncIterator[Hosts]:
    """This machine alone, with every engine: for a lab whose state (and plan) is lost."""
    yield Hosts({LOCAL_HOST: any_engine_host()})
