"""Bringing one node up (start, console bootstrap, SSH) and taking it down, on its host."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from ..access import Target, resolve_target
from ..errors import NotRunningError, RuntimeFailure, listing
from ..plan.model import NodePlan
from ..plan.ports import collect_ports
from ..runtime import console, ssh
from ..runtime.host import Host
from ..runtime.hosts import Hosts
from ..state import LabState, save_state
from .after_boot import run_after_boot
from .datapath import ensure_bridge
from .events import Event, Progress
from .links import cut_cables_of
from .readiness import console_size, wait_until_ready
from .startup_config import config_push
from .status import HostView, look, node_status


def public_key(state: LabState) -> str:
    path = Path(state.ssh_key_path + ".pub") if state.ssh_key_path else None
    return path.read_text().strip() if path and path.exists() else ""


async def exit_message(host: Host, lab: str, node: str) -> str:
    """Why a node's QEMU is gone, from the end of its log."""
    try:
        log = await host.engine.read_log(lab, node)
    except RuntimeFailure:
        log = None  # the message stands without its tail
    tail = "\n".join((log or b"").decode(errors="replace").strip().splitlines()[-5:])
    where = f"`newtlab logs {node} --qemu`"
    return f"QEMU for {node} is not running (see {where})" + (f":\n{tail}" if tail else "")


async def start_process(
    state: LabState,
    host: Host,
    node: NodePlan,
    progress: Progress,
    launch: Callable[[], Awaitable[int]] | None = None,
) -> None:
    """Start the node's QEMU (``launch``: otherwise than booting it) and record its PID at
    once."""
    progress(Event(node.name, "starting", "QEMU"))
    record = state.nodes[node.name]
    record.status, record.phase, record.error = "starting", "qemu", ""
    record.started_at = time.time()
    try:
        record.console_offset = await console_size(host, state.name, node)
        record.pid = await (launch() if launch else host.engine.start(state.name, node))
        await cut_cables_of(state, host, node)  # a cable pulled stays pulled
    except RuntimeFailure as exc:
        record.status, record.error = "error", str(exc)
        save_state(state)
        progress(Event(node.name, "error", str(exc), failed=True))
        raise
    save_state(state)


async def _watch(state: LabState, host: Host, node: NodePlan) -> None:
    """Return when the node's QEMU is gone (so a boot wait can fail fast)."""
    while await host.engine.running(state.name, node.name, state.nodes[node.name].pid):
        await asyncio.sleep(0.5)


async def _reach(state: LabState, host: Host, node: NodePlan, progress: Progress) -> None:
    deadline = state.nodes[node.name].started_at + node.boot_timeout
    deadline = time.monotonic() + max(deadline - time.time(), 1)
    try:
        await _reach_by(state, host, node, progress, deadline)
    except RuntimeFailure as exc:
        if time.monotonic() < deadline:
            raise
        # Whatever step it was in, the cause is the time allowed: say which limit and how
        # to give more.
        raise RuntimeFailure(
            f"not ready within vm_boot_timeout ({node.boot_timeout} s): {exc}\n"
            "Without KVM, or with many VMs booting at once, a guest may need longer: raise "
            f"vm_boot_timeout of platform {node.platform} in platforms.json, or boot fewer "
            "at once (deploy --boot-parallel N)"
        ) from None


async def _reach_by(
    state: LabState, host: Host, node: NodePlan, progress: Progress, deadline: float
) -> None:
    values = {
        "ssh_user": node.ssh_user,
        "ssh_pass": node.ssh_pass,
        "ssh_pubkey": public_key(state),
        "hostname": node.name,
    }
    phase = "console"

    def step(detail: str) -> None:
        progress(Event(node.name, phase, detail))

    record = state.nodes[node.name]
    push = None if record.config_pushed else config_push(node.startup_config)
    async with host.reach_console(state.name, node) as address:
        await console.bootstrap(address, node.console, values, deadline, step, push)
    if push is not None:
        record.config_pushed = True
        save_state(state)
    async with host.reach(node.ssh_port, node.ssh_bind) as (address, port):
        target = ssh.SSHTarget(address, port, node.ssh_user, node.ssh_pass, state.ssh_key_path)
        await wait_until_ready(state, host, node, target, deadline, progress)
        await run_after_boot(target, node, public_key(state), deadline, progress)


async def reach_resumed(state: LabState, host: Host, node: NodePlan, progress: Progress) -> None:
    """A VM resumed in a saved state: its probes that ask the guest (its console showed
    its boot long ago) within its boot timeout, then its clock set to now where its login
    is a shell that takes `date` (the saved clock lags by the snapshot's age)."""
    record = state.nodes[node.name]
    asking = node.model_copy(update={"readiness": [p for p in node.readiness
                                                   if p.kind != "console"]})  # fmt: skip
    deadline = time.monotonic() + node.boot_timeout
    async with host.reach(node.ssh_port, node.ssh_bind) as (address, port):
        target = ssh.SSHTarget(address, port, node.ssh_user, node.ssh_pass, state.ssh_key_path)
        try:
            await wait_until_ready(state, host, asking, target, deadline, progress)
        except (RuntimeFailure, OSError) as exc:
            record.status, record.phase, record.error = "error", "failed", str(exc)
            save_state(state)
            raise RuntimeFailure(f"{node.name}: {exc}") from None
        now = f"@{int(time.time())}"
        line = f"date -u -s {now} || sudo -n date -u -s {now}"
        try:
            done = await ssh.run(target, line, timeout=10)
            note = "clock set" if done.exit_status == 0 else "clock left as saved"
        except (TimeoutError, OSError, asyncssh.Error):
            note = "clock left as saved"
    record.status, record.phase, record.error = "running", "ready", ""
    save_state(state)
    progress(Event(node.name, "ready", f"resumed; {note}"))


async def bring_up(state: LabState, host: Host, node: NodePlan, progress: Progress) -> None:
    """Console bootstrap then SSH readiness, failing fast if QEMU dies meanwhile."""
    record = state.nodes[node.name]
    record.phase = "booting"
    reach = asyncio.create_task(_reach(state, host, node, progress))
    watch = asyncio.create_task(_watch(state, host, node))
    try:
        done, _ = await asyncio.wait({reach, watch}, return_when=asyncio.FIRST_COMPLETED)
        if reach in done:
            reach.result()
        else:
            raise RuntimeFailure(await exit_message(host, state.name, node.name))
    except (RuntimeFailure, OSError) as exc:
        reason = str(exc)
        if not await host.engine.running(state.name, node.name, record.pid):
            reason = await exit_message(host, state.name, node.name)  # the real cause
        record.status, record.phase, record.error = "error", "failed", reason
        save_state(state)
        progress(Event(node.name, "error", reason, failed=True))
        raise RuntimeFailure(f"{node.name}: {reason}") from None
    finally:
        for task in (reach, watch):
            task.cancel()
        await asyncio.gather(reach, watch, return_exceptions=True)
    record.status, record.phase = "running", "ready"
    record.boot_seconds = round(time.time() - record.started_at, 1)
    save_state(state)
    progress(Event(node.name, "ready", f"in {record.boot_seconds:.1f} s"))


async def boot(state: LabState, host: Host, node: NodePlan, progress: Progress) -> None:
    """Start a stopped node and wait until it answers SSH; a failure names the node."""
    try:
        await start_process(state, host, node, progress)
    except RuntimeFailure as exc:
        raise RuntimeFailure(f"{node.name}: {exc}") from None
    await bring_up(state, host, node, progress)


async def boot_each(
    state: LabState,
    hosts: Hosts,
    nodes: Sequence[NodePlan],
    progress: Progress,
    limits: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """Boot ``nodes`` at once, at most ``limits[host]`` at a time on a host; why each
    that failed did, by name. One failing does not stop the others."""
    gates = {host: asyncio.Semaphore(limit) for host, limit in (limits or {}).items()}

    async def one(node: NodePlan) -> None:
        async with gates.get(node.host) or contextlib.nullcontext():
            await boot(state, hosts[node.host], node, progress)

    results = await asyncio.gather(*(one(n) for n in nodes), return_exceptions=True)
    return {
        node.name: str(result)
        for node, result in zip(nodes, results, strict=True)
        if isinstance(result, BaseException)
    }


async def stop_process(
    state: LabState, host: Host, node: str, grace: float, progress: Progress
) -> None:
    progress(Event(node, "stopping"))
    record = state.nodes[node]
    if not await host.engine.stop(state.name, node, record.pid, grace):
        raise RuntimeFailure(f"{node}: QEMU (pid {record.pid}) did not stop")
    record.status, record.phase, record.pid = "stopped", "stopped", 0
    save_state(state)
    progress(Event(node, "stopped"))


async def start_nodes(
    state: LabState, hosts: Hosts, names: Sequence[str], progress: Progress
) -> None:
    """Start stopped nodes ``names`` together and wait until each answers SSH. Each is
    checked before any starts; a host's datapath is started again first if it is down,
    so their links come back."""
    nodes = [state.plan.node(name) for name in names]
    uses = collect_ports(state.plan)
    refusals = []
    for node in nodes:
        host = hosts[node.host]
        if await host.engine.running(state.name, node.name, state.nodes[node.name].pid):
            refusals.append(f"{node.name} is already running")
            continue  # its ports are its own
        conflicts = await host.probe_ports(u for u in uses if u.node == node.name)
        if conflicts:
            refusals.append(f"cannot start {node.name}: " + "; ".join(conflicts))
    _refuse(refusals, "nothing was started", nodes)
    for name in dict.fromkeys(node.host for node in nodes if node.host in state.plan.bridges):
        await ensure_bridge(state, hosts, name, await look(hosts[name], state.name), progress)
    failures = await boot_each(state, hosts, nodes, progress)
    _refuse(list(failures.values()), "start failed", nodes)


async def stop_nodes(
    state: LabState, hosts: Hosts, names: Sequence[str], grace: float, progress: Progress
) -> None:
    """Power running nodes ``names`` off together (their disks and their links' other
    ends are kept). Each is checked before any stops."""
    nodes = [state.plan.node(name) for name in names]
    refusals = [
        f"{node.name} is not running"
        for node in nodes
        if not await hosts[node.host].engine.running(
            state.name, node.name, state.nodes[node.name].pid
        )
    ]
    _refuse(refusals, "nothing was stopped", nodes)
    results = await asyncio.gather(
        *(stop_process(state, hosts[n.host], n.name, grace, progress) for n in nodes),
        return_exceptions=True,
    )
    _refuse([str(r) for r in results if isinstance(r, BaseException)], "stop failed", nodes)


def _refuse(reasons: Sequence[str], head: str, nodes: Sequence[NodePlan]) -> None:
    """Raise one failure: for one node its reason as it is; for several, each reason
    listed under ``head``."""
    if len(nodes) == 1 and reasons:
        raise RuntimeFailure(reasons[0])
    if reasons:
        raise RuntimeFailure(listing(head, reasons))


def _why_not(state: LabState, name: str, vm: NodePlan, status: str, unreachable: str) -> str:
    """What ``status`` means for reaching ``name`` (on ``vm``), and what brings it back."""
    who = name if name == vm.name else f"{name} (a virtual host in {vm.name})"
    record = state.nodes[vm.name]
    start = f"`newtlab start {vm.name}`"
    because = {
        "stopped": f"{vm.name} is stopped — {start} starts it",
        "exited": f"{vm.name}'s QEMU has exited — {start} starts it again "
        f"(`newtlab logs {vm.name} --qemu` says why it ended)",
        "starting": f"{vm.name} is still starting ({record.phase}) — wait until "
        f"`newtlab status {state.name}` shows it running",
        "pending": f"{vm.name} has not been started — `newtlab status {state.name}`",
        "unknown": f"its server {vm.host} does not answer ({unreachable})",
    }.get(
        status,
        f"{vm.name} failed to start ({record.error.splitlines()[0] if record.error else status})"
        f" — `newtlab logs {vm.name}` shows its console; {start} tries again",
    )
    return because if name == vm.name else f"{who} is not running: {because}"


async def require_running(state: LabState, hosts: Hosts, name: str) -> Target:
    """``name`` (a VM or a virtual host) as a target, if its VM runs now (asked of its
    host); else ``NotRunningError`` saying its state and what to do. A node that failed
    after its VM booted (a boot patch, say) is reachable, to see why."""
    target = resolve_target(state, name)
    vm = target.node
    host = hosts.get(vm.host)
    unreachable = hosts.unreachable.get(vm.host, "")
    view = await look(host, state.name) if host is not None else HostView(unreachable=unreachable)
    status = node_status(state, vm.name, view)
    failed_but_up = status == "error" and view.vm_alive(vm.name, state.nodes[vm.name].pid)
    if status != "running" and not failed_but_up:
        raise NotRunningError(_why_not(state, name, vm, status, unreachable))
    return target


@dataclass(frozen=True)
class RunResult:
    """What a command run on a node did."""

    returncode: int
    stdout: str
    stderr: str


async def run_command(
    state: LabState, hosts: Hosts, name: str, argv: list[str], timeout: float
) -> RunResult:
    """Run exactly ``argv`` on node or virtual host ``name`` over SSH, as its login user
    with the lab's key; its exit status and output."""
    target = await require_running(state, hosts, name)
    node = target.node
    async with hosts[node.host].reach(node.ssh_port, node.ssh_bind) as (address, port):
        login = target.login(address, port, state.ssh_key_path)
        try:
            done = await ssh.run(login, shlex.join(argv), timeout=timeout)
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            raise RuntimeFailure(f"{name}: `{shlex.join(argv)}` did not run: {exc!r}") from None
    code = done.exit_status if done.exit_status is not None else 255  # ended by a signal
    return RunResult(code, str(done.stdout or ""), str(done.stderr or ""))
