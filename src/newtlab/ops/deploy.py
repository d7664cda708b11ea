"""Deploy: from a plan to running, reachable VMs (docs/design.md, "Deploy"), on the plan's hosts.

State is saved before the first process starts and after every step, and
each PID is recorded as soon as it exists, so a deploy that fails or is
killed half-way can always be destroyed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from ..agent import layout
from ..errors import LabStateError, PortConflictError, RuntimeFailure, listing
from ..home import ensure_private_dir, lab_dir
from ..plan.capacity import Resources, capacity_problems
from ..plan.model import LOCAL_HOST, Accel, NodePlan, Plan
from ..plan.plan import accelerated
from ..plan.ports import collect_ports
from ..plan.qemu_args import UEFI_FIRMWARE
from ..profiles import patch_profiles
from ..runtime.host import Host
from ..runtime.hosts import Hosts, all_settled, each_host
from ..runtime.ssh import create_key_pair
from ..runtime.transports.base import Say
from ..snapshots import Snapshot, restore_key
from ..state import LabState, NodeState, save_state, state_path
from .datapath import start_bridge
from .events import Event, Progress
from .node import boot_each, public_key
from .snapshot import refuse_differences, resume_all, start_saved
from .startup_config import write_config_iso


async def check_not_deployed(name: str, hosts: Hosts) -> None:
    if state_path(name).exists():
        raise LabStateError(
            f"lab {name!r} is already deployed — `newtlab destroy {name}` first, "
            "or deploy with --force to replace it"
        )
    found = await each_host(hosts, lambda host: host.processes(name))
    where = [
        f"on {host}: pids {', '.join(str(p.pid) for p in sorted(processes, key=lambda p: p.pid))}"
        for host, processes in zip(hosts, found, strict=True)
        if processes
    ]
    if where:
        servers = any(host != LOCAL_HOST for host in hosts)
        fix = f"`newtlab destroy {name}" + (" -S DIR`" if servers else "`")
        raise LabStateError(
            f"processes of lab {name!r} are running without state here ({'; '.join(where)}) "
            f"— {fix} removes them"
            + (" (-S: the spec dir naming those servers)" if servers else "")
        )


async def port_conflicts(plan: Plan, hosts: Hosts) -> list[str]:
    """Ports the plan needs on ``hosts`` that something else holds, with their purpose."""
    uses = collect_ports(plan)
    found = await each_host(
        hosts, lambda host: host.probe_ports(u for u in uses if u.host == host.name)
    )
    return [line for lines in found for line in lines]


def _needs(plan: Plan, host: str) -> list[tuple[str, str]]:
    """Files the host's VMs need besides QEMU, with the Debian package holding each."""
    uefi = any(n.firmware == "uefi" for n in plan.nodes if n.host == host)
    return [(UEFI_FIRMWARE, "ovmf")] if uefi else []


def _boot_files(node: NodePlan) -> list[tuple[str, str]]:
    """The node's ``(kind, path)`` of each file it boots directly (kernel, initrd)."""
    return [(kind, path) for kind, path in (("kernel", node.kernel), ("initrd", node.initrd))
            if path]  # fmt: skip


async def check_hosts(plan: Plan, hosts: Hosts) -> None:
    """Before anything starts anywhere: every host has what labs need, every port is
    free, every base image is usable. Every problem on every host, reported at once."""
    images = sorted({(node.host, node.image, node.image_sha256) for node in plan.nodes})
    boot = sorted({(n.host, kind, path) for n in plan.nodes for kind, path in _boot_files(n)})
    machines, conflicts, problems, boot_problems = await asyncio.gather(
        each_host(hosts, lambda host: host.check_machine(_needs(plan, host.name))),
        port_conflicts(plan, hosts),
        asyncio.gather(*(hosts[host].check_image(image, sha) for host, image, sha in images)),
        asyncio.gather(*(hosts[host].check_boot_file(kind, path) for host, kind, path in boot)),
    )
    found = [line for lines in machines for line in lines]
    problem_of = dict(zip(images, problems, strict=True))  # each image checked once per host
    boot_problem_of = dict(zip(boot, boot_problems, strict=True))
    for n in plan.nodes:
        # A missing image first: its kernel is most likely missing with it, for one reason.
        image_problem = problem_of[n.host, n.image, n.image_sha256]
        boot_problems = [boot_problem_of[n.host, kind, path] for kind, path in _boot_files(n)]
        for problem in [image_problem] if image_problem else boot_problems:
            if problem:
                found.append(f"{n.name}: {problem}")
    if conflicts:
        raise PortConflictError(conflicts, found)
    if found:
        raise RuntimeFailure(listing("cannot deploy", found))


async def preflight(
    plan: Plan, hosts: Hosts, accel: str, overcommit: bool = False
) -> tuple[Plan, list[str], dict[str, Resources]]:
    """All checks on all hosts at once, before anything starts: no leftovers of the lab,
    the tools, ports and images (``check_hosts``); each host's accelerator (each proves
    KVM for itself, or takes what was asked); and, unless ``overcommit``, that each
    host's VMs fit its memory, cores and disk. The plan to deploy — on the accelerators
    chosen — and a note per host whose choice needs saying."""
    results = await asyncio.gather(
        check_not_deployed(plan.lab, hosts),
        check_hosts(plan, hosts),
        each_host(hosts, lambda host: host.engine.choose_accel(accel)),
        each_host(hosts, lambda host: host.resources()),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    choices = dict(zip(hosts, cast(list[tuple[Accel, str]], results[2]), strict=True))
    chosen = accelerated(plan, {name: choice for name, (choice, _) in choices.items()})
    have = dict(zip(hosts, cast(list[Resources], results[3]), strict=True))
    if not overcommit:
        short = capacity_problems(chosen, have)
        if short:
            raise RuntimeFailure(
                listing("cannot deploy: the lab does not fit", short)
                + "\nNothing was started. `--overcommit` deploys anyway."
            )
    notes = [
        note if len(hosts) == 1 else f"{name}: {note}"
        for name, (_, note) in choices.items()
        if note
    ]
    return chosen, notes, have


def _new_state(plan: Plan, accel_note: str) -> LabState:
    directory = ensure_private_dir(lab_dir(plan.lab))
    key = directory / layout.SSH_KEY
    create_key_pair(key)
    return LabState(
        name=plan.lab,
        created=datetime.now(UTC),
        spec_dir=plan.spec_dir,
        ssh_key_path=str(key),
        plan=plan,
        nodes={n.name: NodeState() for n in plan.nodes},
        accel_note=accel_note,
        links={link.name: link.settings for link in plan.links if link.settings.bridge()},
    )


async def _disks(
    plan: Plan,
    host: Host,
    state: LabState,
    upload: bool,
    progress: Progress,
    snapshot: Snapshot | None,
) -> None:
    """Base images onto ``host`` (uploaded once if it lacks them), then each VM's overlay:
    new, or the snapshot's copy from the host's store."""
    nodes = [n for n in plan.nodes if n.host == host.name]
    bases = {}  # each file a VM boots from: its path here
    for image in sorted({n.image for n in nodes} | {p for n in nodes for _, p in _boot_files(n)}):
        say: Say = lambda line: progress(Event("", "upload", line))  # noqa: E731
        bases[image] = await host.provide_image(image, upload, say)

    async def overlay(node: NodePlan) -> None:
        boot = {kind: bases[path] for kind, path in _boot_files(node)}
        if boot:
            await host.link_boot_files(plan.lab, node.name, boot)
        if snapshot is None:
            progress(Event(node.name, "overlay"))
            await host.create_overlay(plan.lab, node.name, bases[node.image])
        else:
            progress(Event(node.name, "overlay", f"from snapshot {snapshot.name}"))
            saved = snapshot.vms[node.name]
            await host.stage_snapshot(
                plan.lab, snapshot.name, node.name, saved.base_bytes, saved.base_mtime_ns
            )
            state.nodes[node.name].config_pushed = True  # it is in the saved state
        await write_config_iso(host, plan.lab, node, public_key(state))
        state.nodes[node.name].phase = "overlay"

    await all_settled(overlay(node) for node in nodes)  # a failure cleans up after all


# Tests only: NEWTLAB_TEST_PAUSE_AT=<phase> makes deploy stop there (writing
# `<lab dir>/paused-<phase>`) so a test can kill it at each phase boundary.
PAUSE_ENV = "NEWTLAB_TEST_PAUSE_AT"


async def _phase_done(lab: str, phase: str) -> None:
    if os.environ.get(PAUSE_ENV) == phase:
        (lab_dir(lab) / f"paused-{phase}").touch()
        await asyncio.sleep(3600)


# VMs that boot at once per host core when deploy is not told (bench/boot.py measured
# labs of 4 to 32 host-image VMs on 2 cores: docs/operate.md, "Boot concurrency").
BOOTS_PER_CORE: dict[Accel, int] = {"tcg": 2, "kvm": 4}


def boot_limits(
    plan: Plan, have: dict[str, Resources], boot_parallel: int | None
) -> dict[str, int]:
    """How many VMs boot at once on each host: ``boot_parallel`` (0: all), or, when it is
    None, as many per core as the host's accelerator copes with (``BOOTS_PER_CORE``)."""
    limits = {}
    for name, resources in have.items():
        vms = sum(1 for node in plan.nodes if node.host == name) or 1
        if boot_parallel is None:
            accel = plan.accels.get(name, plan.accel)
            limits[name] = min(vms, BOOTS_PER_CORE[accel] * max(resources.cpus, 1))
        else:
            limits[name] = min(vms, boot_parallel or vms)
    return limits


async def _boot_all(
    plan: Plan, hosts: Hosts, state: LabState, progress: Progress, limits: dict[str, int]
) -> list[str]:
    """Start and bring up every VM, at most ``limits[host]`` booting at once on each host;
    one line per node that failed. Each VM's waits count from its own start."""
    for name, limit in limits.items():
        waiting = sum(1 for node in plan.nodes if node.host == name) - limit
        if waiting > 0:
            where = "" if len(hosts) == 1 else f" on {name}"
            progress(
                Event("", "boot", f"{limit} VMs boot at once{where}; {waiting} wait their turn")
            )
    failures = await boot_each(state, hosts, plan.nodes, progress, limits)
    return list(failures.values())


async def _resume_saved(
    plan: Plan, hosts: Hosts, state: LabState, snapshot: Snapshot, progress: Progress
) -> list[str]:
    """Every VM started held and loaded with its saved state, then all resumed at once;
    one line per node that failed."""
    results = await asyncio.gather(
        *(start_saved(state, hosts, node, snapshot, progress) for node in plan.nodes),
        return_exceptions=True,
    )
    failures = [f"{node.name}: {result}" for node, result in zip(plan.nodes, results, strict=True)
                if isinstance(result, BaseException)]  # fmt: skip
    if not failures:
        try:
            await resume_all(state, hosts, snapshot, progress)
        except RuntimeFailure as exc:
            failures.append(str(exc))
    return failures


async def deploy(
    plan: Plan,
    hosts: Hosts,
    progress: Progress,
    *,
    accel: str = "auto",
    upload: bool = True,
    overcommit: bool = False,
    boot_parallel: int | None = None,
    snapshot: Snapshot | None = None,
) -> LabState:
    """Deploy ``plan`` on ``hosts`` (the caller holds the lab lock): ``preflight``, then
    each phase on every host at once, the next starting when all are done. ``accel``:
    ``auto``, ``kvm`` or ``tcg``; ``upload``: send base images a server lacks;
    ``overcommit``: deploy even if the VMs do not fit; ``boot_parallel``: the VMs
    booting at once on each host (0: no cap; None: as many as its cores and
    accelerator cope with, ``boot_limits``); ``snapshot``: the VMs resume its saved
    states instead of booting (``refuse_differences`` first)."""
    plan, notes, have = await preflight(plan, hosts, accel, overcommit)
    for note in notes:
        progress(Event("", "accel", note))
    if snapshot is not None:
        await refuse_differences(snapshot, plan, hosts)
    try:
        state = _new_state(plan, "; ".join(notes))
        if snapshot is not None:
            restore_key(snapshot, Path(state.ssh_key_path))
            state.links = {name: s for name, s in snapshot.links.items() if s.bridge()}
        save_state(state)
        await _phase_done(plan.lab, "state")
        await each_host(hosts, lambda host: host.prepare_lab(plan.lab))
        await each_host(hosts, lambda host: _disks(plan, host, state, upload, progress, snapshot))
        save_state(state)
        await _phase_done(plan.lab, "disks")
    except (OSError, RuntimeFailure) as exc:
        # Nothing runs yet: leave nothing behind (a full disk, an image that vanished).
        await asyncio.gather(*(h.remove_lab(plan.lab) for h in hosts.values()),
                             return_exceptions=True)  # fmt: skip
        shutil.rmtree(lab_dir(plan.lab), ignore_errors=True)
        raise RuntimeFailure(
            f"deploy failed before any VM started: {exc}\nNothing was started; the lab's "
            "files were removed."
        ) from None
    left = (
        f"The lab is left as it is for inspection (`newtlab logs NODE`); `newtlab destroy "
        f"{plan.lab}` removes it."
    )
    # The links first, then the VMs on them: a datapath may have to exist before a VM
    # can attach to it (newtlink does not mind: it dials its VMs whenever they listen).
    try:
        await asyncio.gather(*(start_bridge(state, hosts, host, progress) for host in plan.bridges))
    except RuntimeFailure as exc:
        raise RuntimeFailure(f"deploy failed: {exc}\n{left}") from None
    if snapshot is None:
        limits = boot_limits(plan, have, boot_parallel)
        failures = await _boot_all(plan, hosts, state, progress, limits)
    else:
        failures = await _resume_saved(plan, hosts, state, snapshot, progress)
    if failures:
        raise RuntimeFailure(listing("deploy failed", failures) + f"\n{left}")

    await _phase_done(plan.lab, "booted")
    tcp_consoles = ", console_port" if any(n.console_port for n in plan.nodes) else ""
    progress(Event("", "profiles", f"writing mgmt_ip, ssh_port{tcp_consoles}, mac into profiles"))
    state.patched_profiles = patch_profiles(plan, lab_dir(plan.lab))
    save_state(state)
    await _phase_done(plan.lab, "profiles")
    progress(Event("", "deployed"))
    return state
