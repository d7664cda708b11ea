"""The public Python API: ``from newtlab import Lab``.

``Lab.load(spec_dir)`` reads and plans a lab (no side effects);
``Lab.attach(name)`` opens a deployed one from its state. Their methods are
the operations the CLI offers, with the same progress events.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .access import node_plan
from .errors import LabStateError, RuntimeFailure
from .home import cache_dir, homes, images_dir, lab_dir
from .locks import lab_lock
from .ops import deploy as deploy_op
from .ops import destroy as destroy_op
from .ops.events import Event, Progress, no_progress
from .ops.node import bring_up, start_process, stop_process
from .ops.provision import DEFAULT_COMMAND, ProvisionResult, provision, provision_targets
from .ops.status import lab_status
from .plan.model import Accel, Plan
from .plan.plan import build_plan, check_lab_name, lab_name_for
from .runtime import accel as accel_probe
from .runtime import procs, qemu
from .runtime.portprobe import port_in_use, probe_plan
from .spec.load import Specs, load_specs
from .state import find_lab_for_node, load_state, save_state


def probe_files() -> tuple[Path, Path] | None:
    """The KVM probe's kernel and initramfs, if the host image has been built."""
    from .image import probe_artifacts

    return probe_artifacts(images_dir())


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
        return cls(lab, build_plan(specs, lab, lab_dir(lab), homes(), accel), specs)

    @classmethod
    def attach(cls, name: str) -> Lab:
        """A deployed lab, from its state."""
        return cls(name, load_state(name).plan)

    def port_conflicts(self) -> list[str]:
        """Ports of this machine the lab needs that something else holds."""
        return probe_plan(self.plan)

    # -- lifecycle ---------------------------------------------------------------------

    def deploy(
        self, *, force: bool = False, accel: str = "auto", progress: Progress = no_progress
    ) -> dict[str, Any]:
        """Start every VM and link, wait until each answers SSH; the lab's status."""
        with lab_lock(self.name):
            if force and (lab_dir(self.name).exists() or procs.lab_vms(self.name)):
                progress(Event("", "destroy", "removing the existing deployment (--force)"))
                asyncio.run(destroy_op.destroy(self.name, progress))
            deploy_op.check_not_deployed(self.name)
            chosen, note = accel_probe.choose_accel(accel, cache_dir() / "accel.json", probe_files)
            if note:
                progress(Event("", "accel", note))
            if chosen != self.plan.accel:
                if self.specs is None:
                    raise LabStateError("an attached lab cannot be re-planned; use Lab.load")
                self.plan = build_plan(self.specs, self.name, lab_dir(self.name), homes(), chosen)
            state = asyncio.run(deploy_op.deploy(self.plan, progress, note))
            return lab_status(state)

    def destroy(self, *, grace: float = 5.0, progress: Progress = no_progress) -> list[str]:
        return destroy_lab(self.name, grace=grace, progress=progress)

    def status(self) -> dict[str, Any]:
        return lab_status(load_state(self.name))

    def stop(self, node: str, *, grace: float = 30.0, progress: Progress = no_progress) -> None:
        """Power a node off (its disk and its links' other ends are kept)."""
        with lab_lock(self.name):
            state = load_state(self.name)
            node_plan(state, node)
            if not procs.is_ours(state.nodes[node].pid, qemu.tag(self.name, node)):
                raise RuntimeFailure(f"{node} is not running")
            asyncio.run(stop_process(state, lab_dir(self.name), node, grace, progress))

    def start(self, node: str, *, progress: Progress = no_progress) -> None:
        """Start a stopped node and wait until it answers SSH; the bridge re-accepts its links."""
        with lab_lock(self.name):
            state = load_state(self.name)
            plan_node = node_plan(state, node)
            if procs.is_ours(state.nodes[node].pid, qemu.tag(self.name, node)):
                raise RuntimeFailure(f"{node} is already running")
            for port in (plan_node.ssh_port, plan_node.console_port):
                problem = port_in_use(plan_node.listen_address, port)
                if problem:
                    raise RuntimeFailure(f"{node}: port {port} {problem}; cannot start")
            directory = lab_dir(self.name)
            start_process(state, directory, plan_node, progress)
            asyncio.run(bring_up(state, directory, plan_node, progress))
            save_state(state)

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
        return asyncio.run(provision(state, targets, command, parallel, progress))


def destroy_lab(name: str, *, grace: float = 5.0, progress: Progress = no_progress) -> list[str]:
    """Destroy lab ``name`` (works even if its state is missing or unreadable)."""
    check_lab_name(name)
    with lab_lock(name):
        return asyncio.run(destroy_op.destroy(name, progress, grace))


def lab_of_node(node: str, lab: str | None = None) -> Lab:
    state = find_lab_for_node(node, lab)
    return Lab(state.name, state.plan)
