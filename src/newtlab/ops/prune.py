"""``newtlab prune``: what this home left behind, and removing it.

Orphans: a lab's processes with no readable state (its directory was lost),
a lab whose state names processes none of which run and whose nodes were
not stopped on purpose (the machine restarted, or they were killed), a lab
directory with no state, a lock file of a lab that no longer exists
that nobody holds, and a snapshot's disks in this machine's store without
its record (a save that did not finish). A lab is removed as ``destroy`` removes it: processes
stopped by tag, profiles restored, files removed.

Caches: on this machine and on every server this home's labs use (or a spec
dir names), the runtimes shipped there and the base images uploaded there
that nothing uses any more (``agent.caches`` decides, on the machine itself).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

from ..errors import LabStateError
from ..home import labs_dir, list_labs
from ..locks import is_held, lab_lock, lock_path, locked_labs, remove_lock
from ..plan.model import LOCAL_HOST, HostPlan
from ..runtime.host import Host, UnusedCache
from ..runtime.hosts import Hosts, each_host, open_servers
from ..snapshots import list_snapshots
from ..state import load_state
from .destroy import destroy, destroy_lab
from .events import Progress

Kind = Literal["processes", "lab", "lock", "snapshot"]


@dataclass(frozen=True)
class Orphan:
    kind: Kind
    lab: str
    detail: str
    host: str = LOCAL_HOST
    snapshot: str = ""  # kind snapshot: its name

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


async def find_orphans(host: Host) -> list[Orphan]:
    """Every orphan of this home on ``host`` (this machine), by lab."""
    running: dict[str, list[int]] = {}
    for process in await host.processes():
        running.setdefault(process.lab, []).append(process.pid)
    root = labs_dir()
    directories = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    orphans = []
    for lab in sorted(set(running) | directories):
        pids = running.get(lab, [])
        try:
            state = load_state(lab)
        except LabStateError:
            state = None
        if state is None:
            if pids:
                shown = ", ".join(map(str, sorted(pids)))
                orphans.append(Orphan("processes", lab, f"pids {shown} run with no readable state"))
            else:
                orphans.append(Orphan("lab", lab, f"{root / lab} has no state"))
            continue
        local_only = {h.name for h in state.plan.hosts} == {LOCAL_HOST}
        stopped = all(node.status == "stopped" for node in state.nodes.values())
        if local_only and not pids and not stopped:
            orphans.append(Orphan("lab", lab, "deployed, but none of its processes runs "
                                  "(the machine restarted, or they were killed)"))  # fmt: skip
    for lab in locked_labs():
        if lab not in directories and lab not in running and not is_held(lab):
            orphans.append(Orphan("lock", lab, f"{lock_path(lab)}: a lock of a lab that is gone"))
    recorded = {(s.lab, s.name) for s in list_snapshots()}
    for part in await host.snapshot_parts():
        if (part["lab"], part["name"]) not in recorded:
            size = part["bytes"] / (1 << 20)
            orphans.append(Orphan("snapshot", part["lab"], f"snapshot {part['name']}: "
                                  f"{size:.0f} MiB of disks kept without a record (a save that "
                                  "did not finish)", snapshot=part["name"]))  # fmt: skip
    return orphans


@dataclass
class Caches:
    """Unused caches found by host, servers that did not answer, and what was removed."""

    found: dict[str, list[UnusedCache]] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "caches": [{"host": host, **asdict(c)} for host, found in self.found.items()
                       for c in found],
            "unreachable": self.unreachable,
            "caches_removed": self.removed,
        }  # fmt: skip


def labs_servers() -> list[HostPlan]:
    """The servers of every lab of this home whose state can be read."""
    servers: dict[str, HostPlan] = {}
    for lab in list_labs():
        try:
            state = load_state(lab)
        except LabStateError:
            continue
        servers.update({h.name: h for h in state.plan.hosts if h.name != LOCAL_HOST})
    return list(servers.values())


async def server_orphans(hosts: Hosts) -> list[Orphan]:
    """Labs whose processes run on a server of ``hosts`` with no readable state here: its
    state was lost, or (the server's account shared) another controller deployed it."""
    found = []
    for name, host in hosts.items():
        if name == LOCAL_HOST:
            continue
        running: dict[str, list[int]] = {}
        for process in await host.processes():
            running.setdefault(process.lab, []).append(process.pid)
        for lab, pids in sorted(running.items()):
            try:
                load_state(lab)
                continue  # deployed from here: not an orphan
            except LabStateError:
                pass
            shown = ", ".join(map(str, sorted(pids)))
            detail = (f"on server {name}: pids {shown} run with no state here (lost, or "
                      "deployed from another machine)")  # fmt: skip
            found.append(Orphan("processes", lab, detail, host=name))
    return found


async def _caches(hosts: Hosts, remove: bool) -> Caches:
    """Unused caches on every host, removed if asked."""
    listed = await each_host(hosts, lambda host: host.unused_caches())
    result = Caches(dict(zip(hosts, listed, strict=True)), dict(hosts.unreachable))
    if remove:

        async def clear(host: Host) -> list[str]:
            return await host.remove_caches([c.path for c in result.found[host.name]])

        removed = await each_host(hosts, clear)
        result.removed = [
            f"{name}:{path}" for name, paths in zip(hosts, removed, strict=True) for path in paths
        ]
    return result


@dataclass
class Pruned:
    """What ``prune`` found (and removed, if asked)."""

    orphans: list[Orphan]
    caches: Caches
    removed: bool

    def as_dict(self) -> dict[str, object]:
        return {"orphans": [o.as_dict() for o in self.orphans], **self.caches.as_dict(),
                "removed": self.removed}  # fmt: skip


async def prune(servers: Iterable[HostPlan], remove: bool, progress: Progress) -> Pruned:
    """This home's orphans and unused caches on this machine, on ``servers`` and on every
    server of this home's labs; with ``remove``, each orphaned lab destroyed (as
    ``destroy`` does; on a server, its processes and files there), stale locks and
    unused caches removed."""
    pool = {(s.ip, s.user, s.ssh_port): s for s in [*labs_servers(), *servers]}
    async with open_servers(list(pool.values())) as hosts:  # before any lab's state goes
        orphans = await find_orphans(hosts[LOCAL_HOST]) + await server_orphans(hosts)
        if remove:
            for orphan in orphans:
                await _remove(orphan, hosts, progress)
        caches = await _caches(hosts, remove)
    return Pruned(orphans, caches, remove)


async def _remove(orphan: Orphan, hosts: Hosts, progress: Progress) -> None:
    if orphan.kind == "snapshot":
        await hosts[orphan.host].remove_snapshot(orphan.lab, orphan.snapshot)
        return
    if orphan.kind != "lock":
        with lab_lock(orphan.lab):
            if orphan.host == LOCAL_HOST:
                await destroy_lab(orphan.lab, progress, grace=2.0)
            else:  # no state: its processes and files on that server, by their tags
                only = Hosts({orphan.host: hosts[orphan.host]})
                await destroy(orphan.lab, None, only, progress, grace=2.0)
    remove_lock(orphan.lab)  # a destroyed lab's lock is stale too
