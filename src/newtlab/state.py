"""A deployed lab's persistent state (``labs/<lab>/state.json``) and how commands find it.

The state holds the plan the lab was deployed from, so every later command
acts on what is running rather than on spec files that may have changed.
It is written atomically after every phase and every process start.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from .agent import layout
from .agent.fsutil import atomic_write
from .errors import LabStateError
from .home import ensure_private_dir, lab_dir, list_labs
from .plan.model import LinkSettings, Plan
from .spec.names import SAFE_NAME_HINT, is_safe_name
from .suggest import did_you_mean

NodeStatus = Literal["pending", "starting", "running", "stopped", "error"]


class NodeState(BaseModel):
    pid: int = 0
    status: NodeStatus = "pending"
    phase: str = ""
    error: str = ""
    started_at: float = 0.0
    console_offset: int = 0  # console log size when QEMU started: console probes look after it
    boot_seconds: float | None = None
    config_pushed: bool = False  # its startup config was typed on its console (deploy only)


class BridgeState(BaseModel):
    """A host's bridge as started: the PID of its supervisor."""

    pid: int = 0
    host: str


class ProfilePatch(BaseModel):
    """What deploy wrote into one profile, so destroy can undo exactly that."""

    device: str
    path: str
    written_sha256: str
    added_credentials: bool
    original_mgmt_ip: str | None = None


class LabState(BaseModel):
    name: str
    created: datetime
    spec_dir: str
    ssh_key_path: str = ""
    plan: Plan
    nodes: dict[str, NodeState] = Field(default_factory=dict)
    bridges: dict[str, BridgeState] = Field(default_factory=dict)
    accel_note: str = ""
    patched_profiles: list[ProfilePatch] = Field(default_factory=list)
    # by link name (a--z): impairment and cable state now (the plan's are deploy's)
    links: dict[str, LinkSettings] = Field(default_factory=dict)

    def link_settings(self, name: str) -> LinkSettings:
        return self.links.get(name, LinkSettings())

    def node_names(self) -> list[str]:
        """Every VM and virtual host a command can name, in plan order."""
        return [name for n in self.plan.nodes for name in (n.name, *n.hosts)]

    def has_node(self, name: str) -> bool:
        return any(n.name == name or name in n.hosts for n in self.plan.nodes)


def state_path(name: str) -> Path:
    return lab_dir(name) / layout.STATE


def save_state(state: LabState) -> None:
    directory = ensure_private_dir(lab_dir(state.name))
    atomic_write(directory / layout.STATE, state.model_dump_json(indent=2).encode(), 0o600)


def load_state(name: str) -> LabState:
    path = state_path(name)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LabStateError(
            f"lab {name!r} not found (no {path}) — deploy it first, or see `newtlab list`"
        ) from None
    try:
        return LabState.model_validate_json(raw)
    except ValidationError as exc:
        raise LabStateError(
            f"{path} is unreadable ({exc.error_count()} problems) — it was written by another "
            f"newtlab version or edited by hand; `newtlab destroy {name}` still finds the "
            "lab's processes"
        ) from None


def find_lab(name: str | None) -> str:
    """The lab a lab command acts on: ``name``, or the only deployed lab."""
    if name:
        if not is_safe_name(name):
            raise LabStateError(f"lab name {name!r} is not allowed: {SAFE_NAME_HINT}")
        if not state_path(name).is_file():
            labs = list_labs()
            known = ", ".join(labs) or "none"
            raise LabStateError(
                f"lab {name!r} is not deployed{did_you_mean(name, labs)} (deployed labs: {known})"
            )
        return name
    labs = list_labs()
    if len(labs) == 1:
        return labs[0]
    if not labs:
        raise LabStateError("no lab is deployed — run `newtlab deploy -S DIR` first")
    raise LabStateError(f"several labs are deployed ({', '.join(labs)}): name one, or pass -S DIR")


def find_lab_for_node(node: str, lab: str | None = None) -> LabState:
    """The state of the one lab that has ``node`` (or of ``lab`` if given)."""
    if lab:
        state = load_state(find_lab(lab))
        if not state.has_node(node):
            names = state.node_names()
            raise LabStateError(
                f"lab {lab!r} has no node {node!r}{did_you_mean(node, names)} (its nodes: "
                f"{', '.join(names)})"
            )
        return state
    matches: list[LabState] = []
    known: list[str] = []
    for name in list_labs():
        try:
            state = load_state(name)
        except LabStateError:
            continue
        known += state.node_names()
        if state.has_node(node):
            matches.append(state)
    if not matches:
        if not known:
            raise LabStateError(f"no node {node!r}: no lab is deployed — `newtlab deploy -S DIR`")
        raise LabStateError(
            f"no deployed lab has a node named {node!r}{did_you_mean(node, known)} "
            f"(`newtlab status` lists each lab's nodes)"
        )
    if len(matches) > 1:
        labs = ", ".join(s.name for s in matches)
        raise LabStateError(f"node {node!r} exists in labs {labs}: pass --lab NAME")
    return matches[0]
