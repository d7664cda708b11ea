"""The lab for other tools: a drawing, an SSH config, an inventory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import NewtlabError
from .common import OnlyLabArg, complete_lab, lab_name, print_json, require_specs


def graph(
    lab: Annotated[
        str | None,
        typer.Argument(help="a deployed lab (default: the only one)", autocompletion=complete_lab),
    ] = None,
    specs: Annotated[
        Path | None,
        typer.Option(
            "-S",
            "--specs",
            metavar="<path>",
            help="draw this spec directory's plan instead (nothing deployed)",
        ),
    ] = None,
    format_: Annotated[str, typer.Option("--format", help="mermaid, dot or html")] = "mermaid",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="write to this file (default: stdout)")
    ] = None,
    watch: Annotated[
        float | None,
        typer.Option(min=1, help="with -o: draw again every this many seconds until Ctrl-C"),
    ] = None,
) -> None:
    """Draw the topology: devices (virtual hosts inside their host VM, servers as
    clusters) and links with interface names; a deployed lab's states and traffic too."""
    from ..export.drawing import FORMATS, draw, keep_drawing
    from ..lab import Lab

    if format_ not in FORMATS:
        raise NewtlabError(f"--format must be mermaid, dot or html (got {format_!r})")
    if watch is not None and (output is None or specs is not None):
        raise NewtlabError("--watch redraws a deployed lab into a file: give LAB and -o FILE")
    attached = None if specs is not None else Lab.attach(lab_name(lab, None))

    def drawing() -> str:
        if attached is None:
            return draw(Lab.load(require_specs(specs)).graph(live=False), format_)
        return draw(attached.graph(), format_)

    if output is None:
        sys.stdout.write(drawing())
    else:
        keep_drawing(output, drawing, watch)


def ssh_config(
    lab: OnlyLabArg = None,
    prefix: Annotated[str, typer.Option(help="put before each Host name, e.g. lab1-")] = "",
) -> None:
    """Print OpenSSH Host entries for every node and virtual host: `ssh -F FILE NODE`."""
    from ..lab import Lab

    sys.stdout.write(Lab.attach(lab_name(lab, None)).ssh_config(prefix))


def inventory(
    lab: OnlyLabArg = None,
    format_: Annotated[str, typer.Option("--format", help="ansible or json")] = "ansible",
) -> None:
    """Print an inventory of every node and virtual host: address, port, user, key and
    network_os; Ansible's (groups by device type and server; save as *.yml) or JSON."""
    from ..lab import Lab

    if format_ not in ("ansible", "json"):
        raise NewtlabError(f"--format must be ansible or json (got {format_!r})")
    attached = Lab.attach(lab_name(lab, None))
    print_json(attached.inventory() if format_ == "ansible" else attached.nodes())
