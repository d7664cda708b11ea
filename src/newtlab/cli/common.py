"""What the command modules share: the consoles, option types, the lab a command means,
JSON output and live progress.

Everything here imports only typer and rich at start-up: ``--help`` runs
this much and no more.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ..errors import NewtlabError

if TYPE_CHECKING:
    from ..lab import Lab
    from ..render import ProgressView

out = Console()
err = Console(stderr=True)


SpecsOpt = Annotated[
    Path | None, typer.Option("-S", "--specs", help="spec directory (topology.json, ...)")
]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="lab name (default: from the spec directory)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
LabOpt = Annotated[
    str | None,
    typer.Option("--lab", help="lab that has the node"),
]
LabArg = Annotated[str | None, typer.Argument(help="lab name")]
OnlyLabArg = Annotated[
    str | None,
    typer.Argument(help="lab name (default: the only one)"),
]
NodeArg = Annotated[str, typer.Argument(help="node name")]
TargetArg = Annotated[str, typer.Argument(help="node or virtual host name")]


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
    from ..plan.plan import check_lab_name, lab_name_for
    from ..state import find_lab

    if specs is not None:
        return check_lab_name(name or lab_name_for(specs))
    if not deployed and (lab or name):
        return check_lab_name(lab or name or "")
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
