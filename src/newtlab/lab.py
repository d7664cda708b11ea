"""The public Python API: ``from newtlab import Lab``.

``Lab.load(spec_dir)`` reads and plans a lab (no side effects);
``Lab.attach(name)`` opens a deployed one from its state. Their methods are
the operations the CLI offers, with the same progress events. Each one opens
the lab's hosts (``runtime.hosts``) for its duration and works through them.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .access import node_plan, resolve_target, ssh_argv
from .agent import layout
from .errors import LabStateError, RuntimeFailure
from .export.graph import Graph, build_graph
from .export.inventory import ansible_inventory
from .export.inventory import entries as inventory_entries
from .export.ssh_config import ssh_config
from .home import homes, lab_dir
from .locks import lab_lock
from .ops import deploy as deploy_op
from .ops import destroy as destroy_op
from .ops import links as links_op
from .ops.deploy import DEFAULT_BOOT_PARALLEL
from .ops.doctor import Check, doctor
from .ops.events import Event, Progress, no_progress
from .ops.node import boot, stop_process
from .ops.provision import ProvisionResult, provision, provision_targets
from .ops.provision_command import DEFAULT_COMMAND
from .ops.repair import ensure_bridge, repair
from .ops.status import LabStatus, lab_status, look, look_all
from .plan.impairments import Direction, ImpairmentError, impairment
from .plan.model import Accel, LinkSettings, Plan
from .plan.plan import build_plan, check_lab_name, lab_name_for
from .plan.ports import collect_ports
from .runtime.console_client import attach as attach_console
from .runtime.hosts import (
    Hosts,
    open_hosts,
    open_local,
    resolve_addresses,
    this_machine,
)
from .runtime.local import LocalHost
from .spec.load import Specs, load_specs
from .state import LabState, find_lab_for_node, load_state

T = TypeVar("T")


def _plan(specs: Specs, lab: str, accel: Accel | Mapping[str, Accel]) -> Plan:
    section = specs.topology.newtlab
    servers = {s.name: s.address for s in section.servers} or dict(section.hosts)
    return build_plan(specs, lab, lab_dir(lab), homes(), accel, resolve_addresses(servers))


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


@dataclass
class Lab:
    name: str
    plan: Plan
    specs: Specs | None = None

    @classmethod
    def load(cls, spec_dir: str | Path, name: str | None = None, accel: Accel = "kvm") -> Lab:
        """Read ``spec_dir`` and plan the lab (no side effects)."""
        directory = Path(spec_dir)
        specs = load_specs(directory)
        lab = check_lab_name(name or lab_name_for(directory))
        return cls(lab, _plan(specs, lab, accel), specs)

    @classmethod
    def attach(cls, name: str) -> Lab:
        """A deployed lab, from its state."""
        return cls(name, load_state(name).plan)

    def port_conflicts(self) -> list[str]:
        """Ports the lab needs on this machine that something else holds."""
        local = Hosts({name: LocalHost(name) for name in this_machine(self.plan)})
        return asyncio.run(deploy_op.port_conflicts(self.plan, local))

    # -- lifecycle ---------------------------------------------------------------------

    def deploy(
        self,
        *,
        force: bool = False,
        accel: str = "auto",
        upload: bool = True,
        overcommit: bool = False,
        boot_parallel: int = DEFAULT_BOOT_PARALLEL,
        progress: Progress = no_progress,
    ) -> LabStatus:
        """Start every VM and link, wait until each answers SSH; the lab's status.

        ``upload``: send base images a server lacks (else that is an error);
        ``overcommit``: deploy even if the VMs need more memory, cores or disk
        than a host has; ``boot_parallel``: VMs booting at once per host (0: all).
        """
        with lab_lock(self.name):
            if force:  # whatever runs under this name goes, as its own state says
                asyncio.run(_destroy(self.name, 5.0, progress, missing_ok=True))
            return _on_hosts(
                self.plan,
                lambda hosts: self._deploy(
                    hosts, accel, upload, overcommit, boot_parallel, progress
                ),
            )

    async def _deploy(
        self,
        hosts: Hosts,
        accel: str,
        upload: bool,
        overcommit: bool,
        boot_parallel: int,
        progress: Progress,
    ) -> LabStatus:
        choices = await deploy_op.preflight(self.plan, hosts, accel, overcommit)
        notes = [
            note if len(hosts) == 1 else f"{name}: {note}"
            for name, (_, note) in choices.items()
            if note
        ]
        for note in notes:
            progress(Event("", "accel", note))
        chosen = {name: choice for name, (choice, _) in choices.items()}
        if {h: chosen[h] for h in self.plan.accels} != self.plan.accels:
            if self.specs is None:
                raise LabStateError("an attached lab cannot be re-planned; use Lab.load")
            self.plan = _plan(self.specs, self.name, chosen)
        state = await deploy_op.deploy(
            self.plan, hosts, progress, "; ".join(notes), upload, boot_parallel
        )
        return lab_status(state, await look_all(hosts, self.name))

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

    def stop(self, node: str, *, grace: float = 30.0, progress: Progress = no_progress) -> None:
        """Power a node off (its disk and its links' other ends are kept)."""
        with lab_lock(self.name):
            state = load_state(self.name)
            plan_node = node_plan(state, node, "stop")

            async def work(hosts: Hosts) -> None:
                host = hosts[plan_node.host]
                if not await host.vm_running(self.name, node, state.nodes[node].pid):
                    raise RuntimeFailure(f"{node} is not running")
                await stop_process(state, host, node, grace, progress)

            _on_hosts(state.plan, work, only={plan_node.host})

    def start(self, node: str, *, progress: Progress = no_progress) -> None:
        """Start a stopped node and wait until it answers SSH; its links come back.

        The bridge of its host is started again first if it is down.
        """
        with lab_lock(self.name):
            state = load_state(self.name)
            plan_node = node_plan(state, node, "start")

            async def work(hosts: Hosts) -> None:
                host = hosts[plan_node.host]
                if await host.vm_running(self.name, node, state.nodes[node].pid):
                    raise RuntimeFailure(f"{node} is already running")
                uses = [u for u in collect_ports(state.plan) if u.node == node]
                conflicts = await host.probe_ports(uses)
                if conflicts:
                    raise RuntimeFailure(f"cannot start {node}: " + "; ".join(conflicts))
                if plan_node.host in state.plan.bridges:
                    view = await look(host, self.name)
                    await ensure_bridge(state, hosts, plan_node.host, view, progress)
                await boot(state, host, plan_node, progress)

            _on_hosts(state.plan, work, only={plan_node.host})

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
        return asyncio.run(provision(state, LocalHost(), targets, command, parallel, progress))

    # -- reaching nodes ----------------------------------------------------------------

    def ssh_command(self, node: str, command: list[str], *, exact: bool = False) -> list[str]:
        """The ``ssh`` argv that reaches a node or virtual host with the lab's key;
        ``exact``: each word of ``command`` quoted (else the remote shell reads them)."""
        state = load_state(self.name)
        return ssh_argv(state, resolve_target(state, node), command, exact=exact)

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

    def console(self, node: str) -> None:
        """Attach this terminal to the node's serial console until Ctrl-]."""
        state = load_state(self.name)
        plan_node = node_plan(state, node, "console")

        async def work(hosts: Hosts) -> None:
            async with hosts[plan_node.host].reach(plan_node.console_port) as (address, port):
                await asyncio.to_thread(attach_console, address, port)

        _on_hosts(state.plan, work, only={plan_node.host})

    def logs(self, node: str, *, qemu: bool = False, follow: bool = False) -> None:
        """Copy the node's console log (or QEMU's log) to stdout; ``follow`` keeps going."""
        state = load_state(self.name)
        plan_node = node_plan(state, node, "logs")
        relative = layout.qemu_log(node) if qemu else layout.console_log(node)

        async def work(hosts: Hosts) -> None:
            host, offset = hosts[plan_node.host], 0
            while True:
                data = await host.read_file(self.name, relative, offset)
                if data is None:
                    raise RuntimeFailure(f"no log yet for {node} ({relative} on {host.name})")
                if data:
                    sys.stdout.buffer.write(data)
                    sys.stdout.buffer.flush()
                    offset += len(data)
                elif not follow:
                    return
                else:
                    await asyncio.sleep(0.3)

        _on_hosts(state.plan, work, only={plan_node.host})


async def _destroy(
    name: str, grace: float, progress: Progress, missing_ok: bool = False
) -> list[str]:
    directory = lab_dir(name)
    try:
        state: LabState | None = load_state(name)
    except LabStateError as exc:
        state = None
        if directory.exists():
            progress(Event("", "warning", f"{exc}; cleaning up by process tags"))
    # Without a state there is no plan: this machine is searched (by process tags).
    opened = open_hosts(state.plan, partial=True) if state is not None else open_local()
    async with opened as hosts:
        if (
            state is None
            and not directory.exists()
            and not await destroy_op.has_leftovers(name, hosts)
        ):
            if missing_ok:
                return []
            raise LabStateError(f"lab {name!r} not found — nothing to destroy (see `newtlab list`)")
        if missing_ok:
            progress(Event("", "destroy", "removing the existing deployment (--force)"))
        return await destroy_op.destroy(name, state, hosts, progress, grace)


def destroy_lab(name: str, *, grace: float = 5.0, progress: Progress = no_progress) -> list[str]:
    """Destroy lab ``name`` (works even if its state is missing or unreadable)."""
    check_lab_name(name)
    with lab_lock(name):
        return asyncio.run(_destroy(name, grace, progress))


def lab_of_node(node: str, lab: str | None = None) -> Lab:
    state = find_lab_for_node(node, lab)
    return Lab(state.name, state.plan)
