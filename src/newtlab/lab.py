"""The public Python API: ``from newtlab import Lab``.

``Lab.load(spec_dir)`` reads and plans a lab (no side effects);
``Lab.attach(name)`` opens a deployed one from its state. Their methods are
the operations the CLI offers, with the same progress events. Each one opens
the lab's hosts (``runtime.hosts``) for its duration and works through them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .access import Target, node_plan, resolve_target, ssh_argv
from .errors import LabStateError, RuntimeFailure, UsageError
from .export.graph import Graph, build_graph
from .export.inventory import ansible_inventory
from .export.inventory import entries as inventory_entries
from .export.ssh_config import ssh_config
from .home import homes, lab_dir
from .locks import lab_lock
from .ops import deploy as deploy_op
from .ops import destroy as destroy_op
from .ops import links as links_op
from .ops import prune as prune_op
from .ops import snapshot as snapshot_op
from .ops.doctor import Check, doctor
from .ops.events import Progress, no_progress
from .ops.logs import log_chunks
from .ops.node import RunResult, require_running, run_command, start_nodes, stop_nodes
from .ops.provision import ProvisionResult, provision, provision_targets
from .ops.provision_command import DEFAULT_COMMAND
from .ops.repair import repair
from .ops.save import SavedConfig, save_configs
from .ops.status import LabStatus, lab_status, look_all
from .ops.validate import CheckResult, ValidationReport
from .ops.validate import validate as validate_op
from .plan.impairments import Direction, ImpairmentError, impairment
from .plan.model import LOCAL_HOST, Accel, CheckPlan, Engine, LinkSettings, Plan
from .plan.plan import build_plan, check_lab_name, lab_name_for
from .runtime.console_client import attach as attach_console
from .runtime.hosts import Hosts, local_host, open_hosts, resolve_addresses, this_machine
from .snapshots import Snapshot, check_snapshot_name, list_snapshots, load_snapshot
from .spec.load import Specs, load_specs
from .state import LabState, find_lab_for_node, load_state, state_path
from .suggest import did_you_mean

T = TypeVar("T")


def _plan(specs: Specs, lab: str, accel: Accel, engine: Engine | None = None) -> Plan:
    section = specs.topology.newtlab
    servers = {s.name: s.address for s in section.servers} or dict(section.hosts)
    resolved = resolve_addresses(servers)
    return build_plan(specs, lab, lab_dir(lab), homes(), accel, resolved, engine)


def _on_hosts(
    plan: Plan,
    work: Callable[[Hosts], Awaitable[T]],
    only: Collection[str] | None = None,
    partial: bool = False,
) -> T:
    """Run ``work`` with the plan's hosts open (one event loop per operation).

    ``only``: just these hosts; ``partial``: go on without unreachable servers.
    """

    async def main() -> T:
        async with open_hosts(plan, only=only, partial=partial) as hosts:
            return await work(hosts)

    return asyncio.run(main())


def _stream(
    plan: Plan, chunks: Callable[[Hosts], AsyncGenerator[bytes, None]], only: Collection[str]
) -> Iterator[bytes]:
    """``chunks``' bytes as a plain iterator, with the plan's hosts (``only`` those)
    open on an event loop of its own for as long as it is iterated."""
    loop = asyncio.new_event_loop()
    opened = open_hosts(plan, only=only)
    try:
        stream = chunks(loop.run_until_complete(opened.__aenter__()))
        try:
            while True:
                try:
                    yield loop.run_until_complete(anext(stream))
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(stream.aclose())
            loop.run_until_complete(opened.__aexit__(None, None, None))
    finally:
        loop.close()


@dataclass
class Lab:
    name: str
    plan: Plan
    specs: Specs | None = None

    @classmethod
    def load(
        cls,
        spec_dir: str | Path,
        name: str | None = None,
        accel: Accel = "kvm",
        engine: Engine | None = None,
    ) -> Lab:
        """Read ``spec_dir`` and plan the lab (no side effects); ``engine`` runs a lab
        without servers (else topology.json's ``newtlab.engine``)."""
        directory = Path(spec_dir)
        specs = load_specs(directory)
        lab = check_lab_name(name or lab_name_for(directory))
        return cls(lab, _plan(specs, lab, accel, engine), specs)

    @classmethod
    def attach(cls, name: str) -> Lab:
        """A deployed lab, from its state."""
        return cls(name, load_state(name).plan)

    def port_conflicts(self) -> list[str]:
        """Ports the lab needs on this machine that something else holds."""
        local = Hosts({name: local_host(name) for name in this_machine(self.plan)})
        return asyncio.run(deploy_op.port_conflicts(self.plan, local))

    # -- lifecycle ---------------------------------------------------------------------

    def deploy(
        self,
        *,
        force: bool = False,
        accel: str = "auto",
        upload: bool = True,
        overcommit: bool = False,
        boot_parallel: int | None = None,
        from_snapshot: str | None = None,
        progress: Progress = no_progress,
    ) -> LabStatus:
        """Start every VM and link, wait until each answers SSH; the lab's status.

        ``upload``: send base images a server lacks (else that is an error);
        ``overcommit``: deploy even if the VMs need more memory, cores or disk
        than a host has; ``boot_parallel``: VMs booting at once per host (0: all; None:
        as many as each host's cores and accelerator cope with); ``from_snapshot``: the
        VMs resume that snapshot of this lab instead of booting (``accel`` ``auto``
        then asks for the accelerator it was taken on).
        """
        snapshot = load_snapshot(self.name, from_snapshot) if from_snapshot else None
        if snapshot is not None and accel == "auto":
            accel = next(iter({vm.accel for vm in snapshot.vms.values()}), accel)
        with lab_lock(self.name):
            if force:  # whatever runs under this name goes, as its own state says
                asyncio.run(destroy_op.destroy_lab(self.name, progress, missing_ok=True))

            async def work(hosts: Hosts) -> tuple[LabState, LabStatus]:
                state = await deploy_op.deploy(
                    self.plan, hosts, progress, accel=accel, upload=upload,
                    overcommit=overcommit, boot_parallel=boot_parallel, snapshot=snapshot,
                )  # fmt: skip
                return state, lab_status(state, await look_all(hosts, self.name))

            state, status = _on_hosts(self.plan, work)
        self.plan = state.plan  # on the accelerators its hosts could run
        return status

    # -- snapshots ---------------------------------------------------------------------

    def snapshot(
        self, name: str, *, replace: bool = False, progress: Progress = no_progress
    ) -> Snapshot:
        """Save every VM of the deployed lab at one moment (memory, devices, disks) and
        its links' settings as snapshot ``name``; ``replace`` one of that name."""
        check_snapshot_name(name)
        with lab_lock(self.name):
            state = load_state(self.name)
            existing = {s.name: s for s in list_snapshots(self.name)}
            if name in existing and not replace:
                raise LabStateError(
                    f"lab {self.name} has a snapshot {name} already — `newtlab snapshot delete "
                    f"{name} {self.name}` first, or save with --force to replace it"
                )

            async def work(hosts: Hosts) -> Snapshot:
                if name in existing:
                    await snapshot_op.delete(existing[name], hosts, state)
                return await snapshot_op.save(state, hosts, name, progress)

            return _on_hosts(state.plan, work)

    def restore(self, name: str, *, progress: Progress = no_progress) -> LabStatus:
        """Bring the lab back to snapshot ``name``: in place if it is deployed (VMs that
        cannot load it in place are re-created from the snapshot), else deployed again
        from the snapshot; the lab's status."""
        snapshot = load_snapshot(self.name, name)
        if not state_path(self.name).exists():
            self.plan = snapshot.plan
            return self.deploy(from_snapshot=name, progress=progress)
        with lab_lock(self.name):
            state = load_state(self.name)

            async def work(hosts: Hosts) -> LabStatus:
                await snapshot_op.restore(state, hosts, snapshot, progress)
                return lab_status(state, await look_all(hosts, self.name))

            return _on_hosts(state.plan, work)

    def snapshots(self) -> list[Snapshot]:
        """The lab's snapshots, oldest first (they outlive the lab)."""
        return list_snapshots(self.name)

    def delete_snapshot(self, name: str) -> None:
        """Remove snapshot ``name`` everywhere it is kept."""
        snapshot = load_snapshot(self.name, name)
        with lab_lock(self.name):
            state = load_state(self.name) if state_path(self.name).exists() else None
            plan = state.plan if state is not None else snapshot.plan
            _on_hosts(plan, lambda hosts: snapshot_op.delete(snapshot, hosts, state))

    def doctor(self) -> list[Check]:
        """This machine, the lab's ports and every server of its pool, checked."""
        return asyncio.run(doctor(self.plan))

    @staticmethod
    def doctor_machine() -> list[Check]:
        """This machine alone, checked for running labs."""
        return asyncio.run(doctor(None))

    def destroy(self, *, grace: float = 5.0, progress: Progress = no_progress) -> list[str]:
        return destroy_lab(self.name, grace=grace, progress=progress)

    def status(self) -> LabStatus:
        state = load_state(self.name)

        async def work(hosts: Hosts) -> LabStatus:
            return lab_status(state, await look_all(hosts, self.name))

        return _on_hosts(state.plan, work, partial=True)  # an unreachable server is shown

    def stop(self, *nodes: str, grace: float = 30.0, progress: Progress = no_progress) -> None:
        """Power nodes off, together (their disks and their links' other ends are kept)."""
        with lab_lock(self.name):
            state = load_state(self.name)
            where = {node_plan(state, node, "stop").host for node in nodes}
            _on_hosts(
                state.plan,
                lambda hosts: stop_nodes(state, hosts, nodes, grace, progress),
                only=where,
            )

    def start(self, *nodes: str, progress: Progress = no_progress) -> None:
        """Start stopped nodes, booting together, and wait until each answers SSH; their
        links come back.

        The datapath of their hosts is started again first if it is down.
        """
        with lab_lock(self.name):
            state = load_state(self.name)
            where = {node_plan(state, node, "start").host for node in nodes}
            _on_hosts(
                state.plan, lambda hosts: start_nodes(state, hosts, nodes, progress), only=where
            )

    def repair(self, *, progress: Progress = no_progress) -> list[str]:
        """Bring back what died (bridges, exited VMs); one line per thing done."""
        with lab_lock(self.name):
            state = load_state(self.name)
            return _on_hosts(state.plan, lambda hosts: repair(state, hosts, progress))

    def provision(
        self,
        devices: list[str] | None = None,
        *,
        command: str = DEFAULT_COMMAND,
        parallel: int = 1,
        progress: Progress = no_progress,
    ) -> list[ProvisionResult]:
        state = load_state(self.name)
        targets = provision_targets(state, devices)
        return asyncio.run(provision(state, local_host(), targets, command, parallel, progress))

    def save_configs(
        self,
        nodes: Collection[str] = (),
        *,
        output: str | Path | None = None,
        progress: Progress = no_progress,
    ) -> list[SavedConfig]:
        """Each node's running configuration (``nodes``, or every VM), as its platform's
        ``vm_save`` reads it, into ``output`` (default: the spec dir's ``configs/``), where
        the next deploy's startup configuration picks it up; a different file there is
        kept beside it as ``<device>.cfg.~N~``."""
        state = load_state(self.name)
        for node in nodes:
            node_plan(state, node, "save")
        directory = Path(output) if output is not None else Path(state.plan.spec_dir) / "configs"
        where = {state.plan.node(n).host for n in nodes} if nodes else None
        return _on_hosts(
            state.plan,
            lambda hosts: save_configs(state, hosts, list(nodes), directory, progress),
            only=where,
        )

    # -- declared tests ---------------------------------------------------------------

    def checks(self, tests: Collection[str] = (), nodes: Collection[str] = ()) -> list[CheckPlan]:
        """The plan's declared tests (``newtlab.validate``), each on each of its nodes;
        only ``tests`` and ``nodes`` when given (a name that is none is a ``UsageError``)."""
        checks = self.plan.checks
        declared = list(dict.fromkeys(c.test for c in checks))
        on = list(dict.fromkeys(c.node for c in checks))
        for name in tests:
            if name not in declared:
                raise UsageError(f"no test {name!r} is declared{did_you_mean(name, declared)} "
                                 f"(tests: {', '.join(declared) or 'none'})")  # fmt: skip
        for name in nodes:
            if name not in on:
                raise UsageError(f"no declared test runs on {name!r}{did_you_mean(name, on)} "
                                 f"(nodes with tests: {', '.join(on) or 'none'})")  # fmt: skip
        return [c for c in checks
                if (not tests or c.test in tests) and (not nodes or c.node in nodes)]  # fmt: skip

    def validate(
        self,
        tests: Collection[str] = (),
        nodes: Collection[str] = (),
        *,
        progress: Progress = no_progress,
    ) -> ValidationReport:
        """Run the declared tests on the deployed lab (in the order written, each on its
        nodes at once); every result, failures included. A lab loaded from its spec dir
        runs the tests as the files say now, an attached one as they were deployed."""
        return self.run_checks(self.checks(tests, nodes), progress=progress)

    def run_checks(
        self, checks: Collection[CheckPlan], *, progress: Progress = no_progress
    ) -> ValidationReport:
        """Run these planned checks (``checks()``) on the deployed lab."""
        state = load_state(self.name)
        names = set(state.node_names())
        missing = sorted({c.node for c in checks} - names)
        if missing:
            raise LabStateError(
                f"the tests run on {', '.join(missing)}, which lab {self.name} does not have "
                f"(its nodes: {', '.join(sorted(names))}); deploy the spec dir again"
            )
        where = {resolve_target(state, c.node).node.host for c in checks}
        results = _on_hosts(
            state.plan,
            lambda hosts: validate_op(state, hosts, list(checks), progress),
            only=where,
            partial=True,
        ) if checks else []  # fmt: skip
        return ValidationReport(self.name, results)

    def check(self, check: CheckPlan) -> CheckResult:
        """Run one planned check (one test on one node) on the deployed lab."""
        return self.run_checks([check]).results[0]

    # -- reaching nodes ----------------------------------------------------------------

    def _running(self, node: str) -> tuple[LabState, Target]:
        """The lab's state and ``node``'s target, once its VM is seen running
        (``NotRunningError`` saying its state and what to do, else)."""
        state = load_state(self.name)
        host = resolve_target(state, node).node.host
        target = _on_hosts(
            state.plan, lambda hosts: require_running(state, hosts, node), {host}, partial=True
        )
        return state, target

    def ssh_command(self, node: str, command: list[str], *, exact: bool = False) -> list[str]:
        """The ``ssh`` argv that reaches a running node or virtual host with the lab's
        key; ``exact``: each word of ``command`` quoted (else the remote shell reads them)."""
        state, target = self._running(node)
        return ssh_argv(state, target, command, exact=exact)

    def run(self, node: str, argv: list[str], *, timeout: float = 60) -> RunResult:
        """Run exactly ``argv`` on a running node or virtual host (each word passed as
        it is, as ``newtlab exec`` does); its exit status, stdout and stderr."""
        state = load_state(self.name)
        host = resolve_target(state, node).node.host
        return _on_hosts(
            state.plan,
            lambda hosts: run_command(state, hosts, node, argv, timeout),
            {host},
            partial=True,
        )

    # -- links -----------------------------------------------------------------------------

    def _links(self, work: Callable[[LabState, Hosts], Awaitable[T]], end: str) -> T:
        """``work`` on the lab's state with the hosts the link at ``end`` needs."""
        with lab_lock(self.name):
            state = load_state(self.name)
            link, _ = links_op.find_end(state.plan, end)
            needed = {link.worker_host, link.a_host, link.z_host}
            return _on_hosts(state.plan, lambda hosts: work(state, hosts), only=needed)

    def link_set(
        self, end: str, values: Mapping[str, str], direction: Direction = "both"
    ) -> LinkSettings:
        """Impair the link at ``end`` (``NODE:IFACE``): ``values`` as users write them
        (``{"delay": "20ms", "loss": "1%"}``); ``out``: what that end sends, ``in``:
        what it receives. What is set and not named stays."""
        try:
            converted = impairment(dict(values))
        except ImpairmentError as exc:
            raise RuntimeFailure(str(exc)) from None
        if not converted:
            raise RuntimeFailure("nothing to set: give --delay, --loss, --rate, …")
        try:
            return self._links(lambda s, h: links_op.impair(s, h, end, converted, direction), end)
        except ImpairmentError as exc:
            raise RuntimeFailure(str(exc)) from None

    def link_reset(self, end: str) -> LinkSettings:
        """No impairment on the link at ``end`` any more (a pulled cable stays pulled)."""
        return self._links(lambda s, h: links_op.reset(s, h, end), end)

    def link_down(self, end: str) -> LinkSettings:
        """Pull the cable: both guests lose carrier and no frame crosses."""
        return self._links(lambda s, h: links_op.cable(s, h, end, up=False), end)

    def link_up(self, end: str) -> LinkSettings:
        return self._links(lambda s, h: links_op.cable(s, h, end, up=True), end)

    def link_settings(self) -> dict[str, LinkSettings]:
        """Every link's settings now, by link name (``a--z``); untouched links too."""
        state = load_state(self.name)
        return {link.name: state.link_settings(link.name) for link in state.plan.links}

    def capture(
        self, end: str, sink: Callable[[bytes], None], *, count: int = 0, duration: float = 0
    ) -> None:
        """Frames crossing the link at ``end``, both ways, as a pcap stream to ``sink``
        (whole records only) until ``count`` frames or ``duration`` seconds, if given."""
        state = load_state(self.name)
        link, _ = links_op.find_end(state.plan, end)
        _on_hosts(
            state.plan,
            lambda hosts: links_op.capture(state, hosts, end, sink, count, duration),
            only={link.worker_host},
        )

    def ssh_config(self, prefix: str = "") -> str:
        """OpenSSH ``Host`` entries for every node and virtual host (``ssh -F``)."""
        return ssh_config(load_state(self.name), prefix)

    def inventory(self) -> dict[str, Any]:
        """An Ansible inventory (YAML plugin form, as JSON) of every node and virtual host."""
        return ansible_inventory(load_state(self.name))

    def nodes(self) -> list[dict[str, Any]]:
        """How to reach each node and virtual host, what it is and where it runs."""
        return inventory_entries(load_state(self.name))

    def graph(self, live: bool = True) -> Graph:
        """The lab as a drawing sees it; ``live``: with each device's state and each
        link's traffic (the lab must be deployed)."""
        return build_graph(self.plan, self.status() if live else None)

    def console(
        self, node: str, *, attached: Callable[[str | tuple[str, int]], None] | None = None
    ) -> None:
        """Attach this terminal to a running node's serial console until Ctrl-];
        ``attached`` hears where it was reached (a Unix socket path here, or the address
        and port of a lab with TCP consoles)."""
        state = load_state(self.name)
        plan_node = node_plan(state, node, "console")
        self._running(node)

        async def work(hosts: Hosts) -> None:
            async with hosts[plan_node.host].reach_console(self.name, plan_node) as address:
                if attached is not None:
                    attached(address)
                await asyncio.to_thread(attach_console, address)

        _on_hosts(state.plan, work, only={plan_node.host})

    def logs(
        self, node: str, *, qemu: bool = False, follow: bool = False, raw: bool = False
    ) -> Iterator[bytes]:
        """The node's console log (or its VM's own log, ``qemu``) as it grows, chunk by
        chunk; ``follow`` keeps waiting for more until the caller stops iterating;
        ``raw``: with the terminal queries the guest's shell sends."""
        state = load_state(self.name)
        host = node_plan(state, node, "logs").host
        return _stream(
            state.plan,
            lambda hosts: log_chunks(
                hosts[host], self.name, node, qemu=qemu, follow=follow, raw=raw
            ),
            only={host},
        )


def destroy_lab(
    name: str,
    *,
    grace: float = 5.0,
    progress: Progress = no_progress,
    specs: str | Path | None = None,
) -> list[str]:
    """Destroy lab ``name`` (works even if its state is missing or unreadable: then its
    processes are found by their tags on this machine, and with ``specs`` on the servers
    that spec dir names)."""
    check_lab_name(name)
    plan = Lab.load(specs, name=name).plan if specs is not None else None
    with lab_lock(name):
        return asyncio.run(destroy_op.destroy_lab(name, progress, grace, plan=plan))


def lab_of_node(node: str, lab: str | None = None) -> Lab:
    state = find_lab_for_node(node, lab)
    return Lab(state.name, state.plan)


def prune(
    specs: str | Path | None = None, *, remove: bool = False, progress: Progress = no_progress
) -> prune_op.Pruned:
    """What this home left behind — orphaned processes, dead labs, stale locks, and on
    this machine and its labs' servers (and ``specs``' servers) the shipped runtimes and
    uploaded images nothing uses; with ``remove``, all of it removed (labs as ``destroy``
    removes them)."""
    servers = []
    if specs is not None:
        servers = [h for h in Lab.load(specs).plan.hosts if h.name != LOCAL_HOST]
    return asyncio.run(prune_op.prune(servers, remove, progress))
