"""OpenSSH ``Host`` entries for every node and virtual host of a deployed lab.

``ssh -F FILE NODE`` then works with plain OpenSSH (and so with scp, rsync,
Ansible's ssh connection): the same address, port, user and key as
``newtlab ssh``, and no host-key pinning — a lab's VMs get new keys each
time they are made.
"""

from __future__ import annotations

from ..access import Target
from ..state import LabState


def targets(state: LabState) -> list[Target]:
    """Every VM that is a device itself, and every virtual host, in plan order."""
    found = []
    for node in state.plan.nodes:
        found += [Target(node, vhost) for vhost in node.vhosts] if node.hosts else [Target(node)]
    return found


def _name(target: Target) -> str:
    return target.vhost.name if target.vhost else target.node.name


def ssh_config(state: LabState, prefix: str = "") -> str:
    """The entries; ``prefix`` is put before each name (e.g. ``lab1-``) when set."""
    lines = [f"# newtlab lab {state.name}: ssh -F <this file> <node>"]
    for target in targets(state):
        node = target.node
        lines += [
            "",
            f"Host {prefix}{_name(target)}",
            f"    HostName {node.ssh_bind}",
            f"    Port {node.ssh_port}",
            f"    User {target.user}",
        ]
        if state.ssh_key_path:
            lines += [f'    IdentityFile "{state.ssh_key_path}"', "    IdentitiesOnly yes"]
        lines += [
            "    StrictHostKeyChecking no",
            "    UserKnownHostsFile /dev/null",
            "    LogLevel ERROR",
        ]
    return "\n".join(lines) + "\n"
