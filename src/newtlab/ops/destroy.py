"""Destroy: stop every process of a lab, restore profiles, remove its files (docs/design.md).

Continue-on-error: every step runs even if an earlier one failed, and all
failures are reported together. Processes are found on each host by their
argv tags, so a lab whose deploy was killed half-way (or whose state is
unreadable) is still cleaned up completely.
"""

from __future__ import annotations

import asyncio
import shutil

from ..errors import LabStateError, RuntimeFailure, listing
from ..home import lab_dir
from ..plan.model import Plan
from ..profiles import restore_profiles, restore_without_state
from ..runtime.host import Host
from ..runtime.hosts import Hosts, each_host, open_hosts, open_local
from ..state import LabState, load_state
from .events import Event, Progress


async def _stop_host(host: Host, name: str, grace: float, progress: Progress) -> list[str]:
    """Stop the lab's VMs on ``host`` in parallel, then its bridge; what would not stop."""
    vms = await host.engine.processes(name)

    async def stop_one(pid: int, node: str) -> str | None:
        progress(Event(node, "stopping"))
        gone = await host.engine.stop(name, node, pid, grace)
        progress(Event(node, "stopped" if gone else "error", failed=not gone))
        return None if gone else f"{node}: QEMU pid {pid} on {host.name} would not stop"

    results = await asyncio.gather(*(stop_one(p.pid, p.node) for p in vms))
    left = [r for r in results if r] + await host.engine.forget(name)
    progress(Event("", "bridge", f"stopping {host.datapath.name} on {host.name}"))
    return left + await host.datapath.stop(name)


async def has_leftovers(name: str, hosts: Hosts) -> bool:
    return any(await each_host(hosts, lambda host: host.processes(name)))


async def destroy(
    name: str, state: LabState | None, hosts: Hosts, progress: Progress, grace: float = 5.0
) -> list[str]:
    """Remove lab ``name`` from every host; returns warnings. Raises if anything is left."""
    directory = lab_dir(name)
    found = await each_host(hosts, lambda host: _stop_host(host, name, grace, progress))
    errors = [line for lines in found for line in lines]
    errors += [  # its share stays in the state, so a later destroy finishes the job
        f"server {server} unreachable, its VMs, bridge and files may remain ({why})"
        for server, why in hosts.unreachable.items()
    ]
    warnings: list[str] = []
    progress(Event("", "profiles", "restoring profiles"))
    try:
        if state is not None:
            warnings += restore_profiles(state.plan, state.patched_profiles, directory)
        else:
            warnings += restore_without_state(directory)
    except OSError as exc:
        errors.append(f"restoring profiles: {exc}")
    # A host whose processes are all gone has its files removed now, whatever else failed.
    done = [host for host, problems in zip(hosts.values(), found, strict=True) if not problems]
    progress(Event("", "files", f"removing the lab's files on {', '.join(h.name for h in done)}"))
    try:
        await asyncio.gather(*(host.remove_lab(name) for host in done))
    except (OSError, RuntimeFailure) as exc:
        errors.append(f"removing the lab's files: {exc}")
    if not errors:
        progress(Event("", "state", f"removing {directory}"))
        try:
            if directory.exists():
                shutil.rmtree(directory)
        except OSError as exc:
            errors.append(f"removing {directory}: {exc}")
    else:
        errors.append(f"state kept in {directory} so `newtlab destroy {name}` can retry")
    if errors:
        raise RuntimeFailure(listing(f"destroy of {name} had {len(errors)} problems", errors))
    progress(Event("", "destroyed"))
    return warnings


async def destroy_lab(
    name: str,
    progress: Progress,
    grace: float = 5.0,
    missing_ok: bool = False,
    plan: Plan | None = None,
) -> list[str]:
    """Destroy lab ``name`` on every host its state names — or, with no readable state,
    by process tags on the hosts of ``plan`` (its spec dir's), else on this machine; the
    caller holds the lab lock. ``missing_ok``: a lab that is not there is no error
    (deploy --force)."""
    directory = lab_dir(name)
    try:
        state: LabState | None = load_state(name)
    except LabStateError as exc:
        state = None
        if directory.exists():
            progress(Event("", "warning", f"{exc}; cleaning up by process tags"))
    if state is not None:
        opened = open_hosts(state.plan, partial=True)
    elif plan is not None:  # the state is lost: its servers are found from its specs
        opened = open_hosts(plan, partial=True)
    else:
        opened = open_local()
    async with opened as hosts:
        if state is None and not directory.exists() and not await has_leftovers(name, hosts):
            if missing_ok:
                return []
            where = "on this machine or its servers" if plan is not None else "on this machine"
            raise LabStateError(f"lab {name!r} not found {where}: nothing to destroy")
        if missing_ok:
            progress(Event("", "destroy", "removing the existing deployment (--force)"))
        return await destroy(name, state, hosts, progress, grace)
