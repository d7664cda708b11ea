"""How a user reaches a deployed node or virtual host: by name, and the SSH command line."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RuntimeFailure
from .plan.model import NodePlan, VirtualHostPlan
from .state import LabState
from .suggest import did_you_mean

if TYPE_CHECKING:
    from .runtime.ssh import SSHTarget


@dataclass(frozen=True)
class Target:
    """Where a name lands: a VM, or a virtual host inside its host VM."""

    node: NodePlan
    vhost: VirtualHostPlan | None = None

    @property
    def user(self) -> str:
        """A virtual host is a login of its own in the host VM, named after it."""
        return self.vhost.name if self.vhost else self.node.ssh_user

    @property
    def password(self) -> str:
        """A virtual host's login takes the lab's key only."""
        return "" if self.vhost else self.node.ssh_pass

    def login(self, address: str, port: int, key_path: str) -> SSHTarget:
        """Its SSH login at ``address``:``port`` (where its VM's SSH port is reached)."""
        from .runtime.ssh import SSHTarget  # asyncssh: not for the exports that need no login

        return SSHTarget(address, port, self.user, self.password, key_path)


def resolve_target(state: LabState, name: str) -> Target:
    for node in state.plan.nodes:
        if node.name == name:
            return Target(node)
        for vhost in node.vhosts:
            if vhost.name == name:
                return Target(node, vhost)
    names = state.node_names()
    raise RuntimeFailure(
        f"lab {state.name} has no node {name!r}{did_you_mean(name, names)} (its nodes: "
        f"{', '.join(names)})"
    )


def node_plan(state: LabState, name: str, doing: str = "") -> NodePlan:
    """The plan of VM ``name``; for a virtual host, what ``doing`` it would mean instead."""
    target = resolve_target(state, name)
    if target.vhost is None:
        return target.node
    vm = target.node
    others = [h for h in vm.hosts if h != name]
    shared = f" (with {', '.join(others)})" if others else ""
    what = {
        "stop": f"stopping {vm.name} stops every host in it{shared}: `newtlab stop {vm.name}`",
        "start": f"starting {vm.name} makes every host in it again{shared}: "
        f"`newtlab start {vm.name}`",
        "console": f"`newtlab console {vm.name}` is the VM's console; "
        f"`newtlab ssh {name}` lands in {name}",
        "logs": f"`newtlab logs {vm.name}` shows the VM's logs",
    }.get(doing, f"use {vm.name}")
    raise RuntimeFailure(f"{name} is a virtual host inside {vm.name}; {what}")


def ssh_argv(
    state: LabState, target: Target, command: list[str], *, exact: bool = False
) -> list[str]:
    """``ssh`` with the lab's key, no host-key pinning (lab VMs are recreated often).

    ``command`` is read by the remote shell as ``ssh`` would (words joined by
    spaces); with ``exact`` each word is quoted, so exactly that argv runs.
    """
    if command and command[0] == "--":
        command = command[1:]
    if exact and command:
        command = [shlex.join(command)]
    node = target.node
    argv = [
        "ssh",
        "-p",
        str(node.ssh_port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
    ]
    if state.ssh_key_path and Path(state.ssh_key_path).exists():
        argv += ["-i", state.ssh_key_path]
    return [*argv, f"{target.user}@{node.ssh_bind}", *command]
