"""How a user reaches a deployed node: its plan by name, and the SSH command line."""

from __future__ import annotations

from pathlib import Path

from .errors import RuntimeFailure
from .plan.model import NodePlan
from .state import LabState


def node_plan(state: LabState, name: str) -> NodePlan:
    """The plan of VM ``name``; a virtual host name is explained, not guessed."""
    for node in state.plan.nodes:
        if node.name == name:
            return node
        if name in node.hosts:
            raise RuntimeFailure(
                f"{name} is a virtual host inside {node.name}; use {node.name} instead"
            )
    raise RuntimeFailure(f"lab {state.name} has no node {name!r}")


def ssh_argv(state: LabState, node: NodePlan, command: list[str]) -> list[str]:
    """``ssh`` with the lab's key, no host-key pinning (lab VMs are recreated often)."""
    if command and command[0] == "--":
        command = command[1:]
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
    return [*argv, f"{node.ssh_user}@{node.ssh_bind}", *command]
