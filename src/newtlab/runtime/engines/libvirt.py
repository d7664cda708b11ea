"""``LibvirtEngine``: each VM is a libvirt domain, defined from the node plan.

The domain XML is rendered where the VM runs (``plan.domain_xml``, with that
host's lab directory); libvirt starts, stops and supervises its QEMU, so the
VMs show in ``virsh list``, virt-manager and Cockpit. The daemon is reached
through the ``libvirt-python`` binding (``pip install newtlab[libvirt]``) at
the host's ``libvirt_uri``: ``qemu:///system`` here, ``qemu+ssh://`` for a
server (OpenSSH, with the pool's login for it). Its calls block, so each runs
in a worker thread.

A domain is the lab's when its name is this home's, lab's and node's
(``DomainIdentity``) and its ``<metadata>`` says so too: a domain of another
home, or one somebody else defined, is never touched. The agent still makes
the lab's files on the host (overlays, startup ISOs, sockets) and finds the
PID libvirt gave a domain's QEMU.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import shlex
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ...agent import layout
from ...agent.tools import PACKAGES
from ...errors import RuntimeFailure
from ...plan.domain_xml import NEWTLAB_NS, DomainIdentity, domain_xml
from ...plan.model import Accel, NodePlan
from ..processes import LabProcess
from ..transports.base import Transport, missing
from .base import SnapshotAction
from .qemu import QemuEngine

T = TypeVar("T")
POLL = 0.25  # seconds between looks at a domain powering down


def home_id(home: str) -> str:
    """A short, stable id of a NEWTLAB_HOME (its absolute path) for domain names."""
    return hashlib.sha256(home.encode()).hexdigest()[:8]


def checked_ssh(uri: str, known_hosts: Path) -> str:
    """``uri``, its OpenSSH made to check the server's host key against newtlab's own record
    (which newtlab's own connection to the server filled on first contact). libvirt's ssh
    transport has no known-hosts parameter; its ``command`` names the ssh it runs, so that is
    a script of newtlab's running ssh with the record, strictly, and never a prompt."""
    if not uri.startswith("qemu+ssh://") or "command=" in uri:
        return uri
    script = known_hosts.parent / "cache" / "libvirt-ssh"
    text = ("#!/bin/sh\nexec ssh -o BatchMode=yes -o StrictHostKeyChecking=yes "
            f"-o UserKnownHostsFile={shlex.quote(str(known_hosts))} \"$@\"\n")  # fmt: skip
    if not script.exists() or script.read_text() != text:
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(text)
        script.chmod(0o755)
    return f"{uri}{'&' if '?' in uri else '?'}command={script}"


def _binding() -> Any:
    try:
        import libvirt
    except ImportError:
        raise RuntimeFailure(
            "the libvirt engine needs the libvirt-python binding: pip install 'newtlab[libvirt]' "
            "(it builds against libvirt-dev: apt-get install libvirt-dev pkg-config gcc)"
        ) from None
    # Its default handler prints every error to stderr, even one newtlab expects and
    # answers (a lookup of a domain that is not there); each is raised all the same.
    libvirt.registerErrorHandler(_quiet, None)
    return libvirt


def _quiet(context: object, error: object) -> None:
    pass


class LibvirtEngine:
    def __init__(
        self, transport: Transport, uri: str, remember: Callable[[str], None] | None = None
    ) -> None:
        self._transport = transport
        self._uri = uri
        self._remember = remember  # told the URI before a domain is defined there
        self._home_id = ""  # of the home there, asked once
        self._qemu = QemuEngine(transport)  # the KVM probe runs QEMU there all the same
        self._conn: Any = None
        self._pool_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return "libvirt"

    @property
    def tools(self) -> Mapping[str, str]:
        return PACKAGES

    async def _call(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` in a thread; libvirt's errors as ``RuntimeFailure``."""
        libvirt = _binding()

        def run() -> T:
            if self._conn is None:
                try:
                    self._conn = libvirt.open(self._uri)
                except libvirt.libvirtError as exc:
                    raise RuntimeFailure(
                        f"libvirt ({self._uri}): {exc.get_error_message()} — is libvirtd "
                        "running there, and may this user use it? (`newtlab doctor` checks it)"
                    ) from None
            return work(self._conn)

        try:
            return await asyncio.to_thread(run)
        except libvirt.libvirtError as exc:
            raise RuntimeFailure(f"libvirt ({self._uri}): {exc.get_error_message()}") from None

    async def problems(self, needs: Sequence[tuple[str, str]] = ()) -> list[str]:
        found = await missing(self._transport, PACKAGES, needs)
        try:
            version = await self._call(lambda conn: conn.getLibVersion())
        except RuntimeFailure as exc:
            return [*found, str(exc)]
        if version < 9_000_000:
            found.append(f"libvirt {version // 1_000_000}.{version // 1000 % 1000} is older "
                         "than 9.0, which the domains are written for")  # fmt: skip
        return found

    async def describe(self) -> str:
        def ask(conn: Any) -> str:
            version = conn.getLibVersion()
            types = [kind for kind in ("kvm", "qemu") if _runs(conn, kind)]
            runs = ", ".join(types) or "none: its QEMU driver cannot run an x86_64 pc domain"
            return (f"libvirt {version // 1_000_000}.{version // 1000 % 1000}.{version % 1000} "
                    f"at {self._uri}; domain types: {runs}")  # fmt: skip

        return await self._call(ask)

    async def choose_accel(self, requested: str) -> tuple[Accel, str]:
        return await self._qemu.choose_accel(requested)

    async def identity(self, lab: str, node: str) -> DomainIdentity:
        if not self._home_id:
            self._home_id = home_id(str(await self._transport.call("home_path")))
        return DomainIdentity(self._home_id, lab, node, importlib.metadata.version("newtlab"))

    async def start(self, lab: str, node: NodePlan) -> int:
        lab_dir = str(await self._transport.call("lab_path", lab=lab))
        identity = await self.identity(lab, node.name)
        xml = domain_xml(identity, node, node.accel, lab_dir)

        def define_and_start(conn: Any) -> None:
            _undefine(conn, identity)  # what a previous start left (stop keeps it)
            conn.defineXML(xml).create()

        if self._remember is not None:
            self._remember(self._uri)
        async with self._pool_lock:  # nodes start at once: one of them makes the pool
            await self._call(lambda conn: _ensure_pool(conn, identity, f"{lab_dir}/{layout.DISKS}"))
        try:
            await self._call(define_and_start)
        except RuntimeFailure as exc:
            if "Permission denied" not in str(exc):
                raise
            raise RuntimeFailure(
                f"{exc} — the QEMU libvirt runs cannot open this home's files: set user and "
                "group in the daemon's qemu.conf to the user running newtlab (docs/libvirt.md)"
            ) from None
        pids = await self._transport.call("domain_pids", names=[identity.name])
        return int(pids.get(identity.name, 0))

    async def stop(self, lab: str, node: str, pid: int, grace: float) -> bool:
        identity = await self.identity(lab, node)

        def power_off(conn: Any) -> bool:
            domain = _ours(conn, identity)
            if domain is None or not domain.isActive():
                return True
            if grace > 0:
                domain.shutdown()  # ACPI powerdown
                deadline = time.monotonic() + grace
                while domain.isActive() and time.monotonic() < deadline:
                    time.sleep(POLL)
            if domain.isActive():
                domain.destroy()
            return not domain.isActive()

        return await self._call(power_off)

    async def forget(self, lab: str) -> list[str]:
        mine = (await self.identity(lab, "")).home_id

        def undefine_all(conn: Any) -> list[str]:
            left = []
            for domain in conn.listAllDomains(0):
                identity = _identity_of(domain.XMLDesc(0))
                if identity is None or (identity.home_id, identity.lab) != (mine, lab):
                    continue
                if domain.isActive():
                    left.append(f"{identity.node}: its domain {domain.name()} still runs")
                else:
                    _undefine_defined(domain)
            _remove_pool(conn, DomainIdentity(mine, lab, "", ""))
            return left

        return await self._call(undefine_all)

    async def running(self, lab: str, node: str, pid: int) -> bool:
        identity = await self.identity(lab, node)

        def active(conn: Any) -> bool:
            domain = _ours(conn, identity)
            return domain is not None and bool(domain.isActive())

        return await self._call(active)

    async def processes(self, lab: str | None = None) -> list[LabProcess]:
        mine = (await self.identity("", "")).home_id

        def ours(conn: Any) -> list[DomainIdentity]:
            found = []
            for domain in conn.listAllDomains(_binding().VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                identity = _identity_of(domain.XMLDesc(0))
                if identity and identity.home_id == mine and lab in (None, identity.lab):
                    found.append(identity)
            return found

        identities = await self._call(ours)
        pids = await self._transport.call("domain_pids", names=[i.name for i in identities])
        return [LabProcess(int(pids.get(i.name, 0)), "qemu", i.node, i.lab) for i in identities]

    async def set_link(self, lab: str, node: str, netdev: str, up: bool) -> None:
        identity = await self.identity(lab, node)

        def update(conn: Any) -> None:
            domain = _ours(conn, identity)
            if domain is None:
                raise RuntimeFailure(f"{node}: its domain {identity.name} is not defined")
            root = ET.fromstring(domain.XMLDesc(0))
            for interface in root.iterfind("devices/interface"):
                alias = interface.find("alias")
                if alias is not None and alias.get("name") == f"ua-{netdev}":
                    link = interface.find("link")
                    if link is None:
                        link = ET.SubElement(interface, "link")
                    link.set("state", "up" if up else "down")
                    live = _binding().VIR_DOMAIN_AFFECT_LIVE
                    domain.updateDeviceFlags(ET.tostring(interface, encoding="unicode"), live)
                    return
            raise RuntimeFailure(f"{node}: no NIC {netdev} in its domain {identity.name}")

        await self._call(update)

    async def _domain(self, lab: str, node: str, work: Callable[[Any], T]) -> T:
        """``work(domain)`` on the node's defined domain (a failure names the node)."""
        identity = await self.identity(lab, node)

        def find(conn: Any) -> T:
            domain = _ours(conn, identity)
            if domain is None:
                raise RuntimeFailure(f"{node}: its domain {identity.name} is not defined")
            return work(domain)

        return await self._call(find)

    async def set_running(self, lab: str, node: str, running: bool) -> None:
        def change(domain: Any) -> None:
            paused = domain.state()[0] == _binding().VIR_DOMAIN_PAUSED
            if running and paused:
                domain.resume()
            elif not running and not paused:
                domain.suspend()

        await self._domain(lab, node, change)

    async def snapshot(self, lab: str, node: str, action: SnapshotAction, tag: str) -> None:
        """libvirt's own snapshots: internal (memory and the overlay inside the overlay),
        the config drive left out; its XML kept beside the store's copy, for a domain
        defined again after a destroy (``start_saved``)."""
        libvirt = _binding()
        kept = None if action == "save" else await self._saved_xml(lab, tag, node)

        def act(domain: Any) -> str:
            if action == "save":
                domain.snapshotCreateXML(_snapshot_xml(domain.XMLDesc(0), tag), 0)
                return str(domain.snapshotLookupByName(tag).getXMLDesc(0))
            snap = _snapshot_of(domain, tag, kept)
            if action == "load":
                domain.revertToSnapshot(snap, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED)
            else:
                snap.delete(0)
            return ""

        xml = await self._domain(lab, node, act)
        if xml:
            await self._transport.call("snapshot_write", lab=lab, name=tag,
                                       file=f"{node}.libvirt.xml", data=xml.encode())  # fmt: skip

    async def _saved_xml(self, lab: str, tag: str, node: str) -> str | None:
        """libvirt's record of snapshot ``tag`` of the node, as the store keeps it."""
        data = await self._transport.call("snapshot_read", lab=lab, name=tag,
                                          file=f"{node}.libvirt.xml")  # fmt: skip
        return bytes(data).decode() if data is not None else None

    async def start_saved(self, lab: str, node: NodePlan, tag: str, machine: str) -> int:
        """Define the domain again, give libvirt back its snapshot (the XML kept in the
        store), and revert to it held: its own domain XML, machine type pinned, comes along."""
        saved = await self._saved_xml(lab, tag, node.name)
        if saved is None:
            raise RuntimeFailure(f"{node.name}: snapshot {tag} has no libvirt record on its host")
        lab_dir = str(await self._transport.call("lab_path", lab=lab))
        identity = await self.identity(lab, node.name)
        xml = domain_xml(identity, node, node.accel, lab_dir)
        libvirt = _binding()

        def define_and_revert(conn: Any) -> None:
            _undefine(conn, identity)
            domain = conn.defineXML(_with_uuid(xml, saved))
            snap = _snapshot_of(domain, tag, saved)
            domain.revertToSnapshot(snap, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED)

        async with self._pool_lock:
            await self._call(lambda conn: _ensure_pool(conn, identity, f"{lab_dir}/{layout.DISKS}"))
        await self._call(define_and_revert)
        pids = await self._transport.call("domain_pids", names=[identity.name])
        return int(pids.get(identity.name, 0))

    async def vm_facts(self, lab: str, node: str, machine: str) -> dict[str, str]:
        def ask(domain: Any) -> dict[str, str]:
            version = domain.connect().getVersion()
            found = ET.fromstring(domain.XMLDesc(0)).find("os/type")
            running = found.get("machine", machine) if found is not None else machine
            return {"qemu": f"{version // 1_000_000}.{version // 1000 % 1000}.{version % 1000}",
                    "machine": running}  # fmt: skip

        return await self._domain(lab, node, ask)

    async def installed_facts(self) -> dict[str, Any]:
        return await self._qemu.installed_facts()

    async def read_log(self, lab: str, node: str, offset: int = 0) -> bytes | None:
        """libvirtd's log of the domain, on the daemon's machine (read by newtlab's agent
        there: the domain's QEMU writes it through virtlogd)."""
        identity = await self.identity(lab, node)
        daemon = "session" if urlsplit(self._uri).path.rstrip("/") == "/session" else "system"
        data: bytes | None = await self._transport.call(
            "libvirt_log", domain=identity.name, daemon=daemon, offset=offset
        )
        return data


def _ours(conn: Any, identity: DomainIdentity) -> Any:
    """The domain of ``identity`` if it exists and its metadata says it is that node's."""
    libvirt = _binding()
    try:
        domain = conn.lookupByName(identity.name)
    except libvirt.libvirtError:
        return None
    found = _identity_of(domain.XMLDesc(0))
    if found is None or (found.home_id, found.lab, found.node) != (
        identity.home_id, identity.lab, identity.node,
    ):  # fmt: skip
        raise RuntimeFailure(
            f"a libvirt domain named {identity.name} exists that newtlab did not define for "
            f"{identity.lab}/{identity.node}: rename or remove it (virsh undefine)"
        )
    return domain


def _undefine(conn: Any, identity: DomainIdentity) -> None:
    domain = _ours(conn, identity)
    if domain is None:
        return
    if domain.isActive():
        domain.destroy()
    _undefine_defined(domain)


def _undefine_defined(domain: Any) -> None:
    """Undefine a stopped domain and libvirt's record of its snapshots (their states stay
    in the overlay; a snapshot's own copy is in newtlab's store)."""
    domain.undefineFlags(_binding().VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)


def _with_uuid(xml: str, snapshot_xml: str) -> str:
    """The domain ``xml`` with the UUID of the domain ``snapshot_xml`` was taken of: libvirt
    redefines a snapshot only for that domain."""
    saved = ET.fromstring(snapshot_xml).find("domain/uuid")
    if saved is None or not saved.text:
        return xml
    root = ET.fromstring(xml)
    for old in root.findall("uuid"):
        root.remove(old)
    uuid = ET.Element("uuid")
    uuid.text = saved.text
    root.insert(1, uuid)  # after <name>, where libvirt writes it
    return ET.tostring(root, encoding="unicode")


def _snapshot_of(domain: Any, tag: str, kept: str | None) -> Any:
    """libvirt's snapshot ``tag`` of ``domain``; redefined from ``kept`` (the store's record)
    when libvirt no longer knows it (the domain was defined again since)."""
    libvirt = _binding()
    try:
        return domain.snapshotLookupByName(tag)
    except libvirt.libvirtError:
        if kept is None:
            raise
    domain.snapshotCreateXML(kept, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)
    return domain.snapshotLookupByName(tag)


def _snapshot_xml(domain_xml_text: str, tag: str) -> str:
    """An internal snapshot of memory and the overlay; every other disk (the read-only
    config drive) left out."""
    root = ET.Element("domainsnapshot")
    ET.SubElement(root, "name").text = tag
    ET.SubElement(root, "memory", snapshot="internal")
    disks = ET.SubElement(root, "disks")
    for disk in ET.fromstring(domain_xml_text).iterfind("devices/disk"):
        target, driver = disk.find("target"), disk.find("driver")
        if target is None:
            continue
        qcow2 = driver is not None and driver.get("type") == "qcow2"
        ET.SubElement(disks, "disk", name=target.get("dev", ""),
                      snapshot="internal" if qcow2 else "no")  # fmt: skip
    return ET.tostring(root, encoding="unicode")


def _runs(conn: Any, kind: str) -> bool:
    """Whether the daemon's QEMU driver can run an x86_64 ``pc`` domain of type ``kind``."""
    try:
        conn.getDomainCapabilities(None, "x86_64", "pc", kind, 0)
    except _binding().libvirtError:
        return False
    return True


def _pool_name(identity: DomainIdentity) -> str:
    return f"newtlab-{identity.home_id}-{identity.lab}"


def _ensure_pool(conn: Any, identity: DomainIdentity, disks: str) -> None:
    """The lab's storage pool: a directory pool over its disks, so each overlay (a qcow2
    backed by the base image, made by the agent) shows as a volume in virsh and
    virt-manager. Destroying the pool keeps the files; the lab's removal takes them."""
    name = _pool_name(identity)
    libvirt = _binding()
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        xml = f"<pool type='dir'><name>{name}</name><target><path>{disks}</path></target></pool>"
        pool = conn.storagePoolDefineXML(xml, 0)
    if not pool.isActive():
        pool.create(0)
    pool.refresh(0)


def _remove_pool(conn: Any, identity: DomainIdentity) -> None:
    libvirt = _binding()
    try:
        pool = conn.storagePoolLookupByName(_pool_name(identity))
    except libvirt.libvirtError:
        return
    if pool.isActive():
        pool.destroy()
    pool.undefine()


def _identity_of(xml: str) -> DomainIdentity | None:
    """Who a domain belongs to, from newtlab's ``<metadata>`` element (None: not ours)."""
    mark = ET.fromstring(xml).find(f"metadata/{{{NEWTLAB_NS}}}node")
    if mark is None:
        return None
    return DomainIdentity(mark.get("home", ""), mark.get("lab", ""), mark.get("node", ""),
                          mark.get("version", ""))  # fmt: skip
