"""What the command modules share: the consoles, option types, the lab a command means,
JSON output, live progress, and completions of lab and node names.

Everything here imports only typer and rich at start-up: a TAB press or
``--help`` runs this much and no more.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

from ..errors import NewtlabError

if TYPE_CHECKING:
    from ..lab import Lab
    from ..render import ProgressView

out = Console()
err = Console(stderr=True)


def complete_lab(incomplete: str) -> list[str]:
    """Lab names of this home (from its directories alone)."""
    from ..home import list_labs

    return [name for name in list_labs() if name.startswith(incomplete)]


def _names(ctx: typer.Context, incomplete: str, vhosts: bool) -> list[str]:
    """VM (and with ``vhosts``, virtual host) names of the lab given with --lab, else of
    every lab of this home, read from the state files as plain JSON (no models: a TAB
    press stays quick)."""
    from ..home import labs_dir, list_labs

    chosen = ctx.params.get("lab")
    names: set[str] = set()
    for lab in [chosen] if chosen else list_labs():
        try:
            state = json.loads((labs_dir() / lab / "state.json").read_text())
            for node in state["plan"]["nodes"]:
                names.add(node["name"])
                names.update(node.get("hosts", []) if vhosts else [])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(name for name in names if name.startswith(incomplete))


def complete_node(ctx: typer.Context, incomplete: str) -> list[str]:
    return _names(ctx, incomplete, vhosts=False)


def complete_target(ctx: typer.Context, incomplete: str) -> list[str]:
    return _names(ctx, incomplete, vhosts=True)


SpecsOpt = Annotated[
    Path | None, typer.Option("-S", "--specs", help="spec directory (topology.json, ...)")
]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="lab name (default: from the spec directory)")
]
MIB = 1 << 20
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
EngineOpt = Annotated[
    Literal["qemu", "libvirt"] | None,
    typer.Option(help="what runs the VMs of a lab on this machine (default: newtlab.engine, "
                 "else qemu); servers say their own"),
]  # fmt: skip
LabOpt = Annotated[
    str | None,
    typer.Option("--lab", help="lab that has the node", autocompletion=complete_lab),
]
LabArg = Annotated[str | None, typer.Argument(help="lab name", autocompletion=complete_lab)]
OnlyLabArg = Annotated[
    str | None,
    typer.Argument(help="lab name (default: the only one)", autocompletion=complete_lab),
]
NodeArg = Annotated[str, typer.Argument(help="node name", autocompletion=complete_node)]
NodesArg = Annotated[
    list[str], typer.Argument(help="node names (together)", autocompletion=complete_node)
]
TargetArg = Annotated[
    str, typer.Argument(help="node or virtual host name", autocompletion=complete_target)
]


def require_specs(specs: Path | None) -> Path:
    if specs is None:
        raise NewtlabError("this command needs the spec directory: pass -S DIR")
    return specs


def lab_name(
    lab: str | None, specs: Path | None, name: str | None = None, deployed: bool = True
) -> str:
    """The lab a lab command means: -S DIR (and --name), a lab name, or the only lab.

    ``deployed=False`` accepts a name without state (destroy cleans up by tags).
    """
    from ..errors import LabStateError
    from ..home import list_labs
    from ..plan.plan import check_lab_name, lab_name_for
    from ..state import find_lab

    if specs is not None:  # a lab named besides is that lab, on the spec dir's servers
        return check_lab_name(lab or name or lab_name_for(specs))
    if not deployed and (lab or name):
        return check_lab_name(lab or name or "")
    if not deployed and not list_labs():  # destroy with nothing to name, and nothing there
        raise LabStateError("no lab is deployed: nothing to destroy")
    return find_lab(lab or name)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def progress(nodes: dict[str, str], quiet: bool) -> ProgressView:
    """Live progress for ``nodes`` (name → host), on stderr when stdout is for --json."""
    from ..render import ProgressView

    return ProgressView(err if quiet else out, nodes)


def node_hosts(lab: Lab) -> dict[str, str]:
    return {n.name: n.host for n in lab.plan.nodes}


def lab_of_node(node: str, lab: str | None) -> Lab:
    from ..lab import lab_of_node as find

    return find(node, lab)
