"""The ``newtlab`` command line: parse, call the Lab API, render. No logic of its own."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from . import __version__
from .errors import NewtlabError, NotAvailableError, PortConflictError
from .lab import Lab
from .plan.model import Accel
from .render import print_plan

app = typer.Typer(
    name="newtlab",
    help="Realise newtron network topologies as connected QEMU virtual machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

SpecsOpt = Annotated[
    Path | None, typer.Option("-S", "--specs", help="spec directory (topology.json, ...)")
]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="lab name (default: from the spec directory)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
LabOpt = Annotated[str | None, typer.Option("--lab", help="lab that has the node")]


def _require_specs(specs: Path | None) -> Path:
    if specs is None:
        raise NewtlabError("this command needs the spec directory: pass -S DIR")
    return specs


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks on errors")] = False,
) -> None:
    """newtlab: deploy, operate and destroy VM labs from newtron specs."""


@app.command()
def version() -> None:
    """Print newtlab's version."""
    out.print(f"newtlab {__version__}")


@app.command()
def plan(
    specs: SpecsOpt = None,
    name: NameOpt = None,
    json_out: JsonOpt = False,
    accel: Annotated[Accel, typer.Option(help="plan for this accelerator")] = "kvm",
    no_probe: Annotated[bool, typer.Option("--no-probe", help="skip the local port probe")] = False,
) -> None:
    """Show exactly what deploy would do: VMs, NICs, ports, links, QEMU argv."""
    lab = Lab.load(_require_specs(specs), name=name, accel=accel)
    if json_out:
        sys.stdout.write(lab.plan.to_json())
    else:
        print_plan(out, lab.plan)
    if not no_probe:
        conflicts = lab.port_conflicts()
        if conflicts:
            raise PortConflictError(conflicts)


def _not_yet(command: str) -> NoReturn:
    raise NotAvailableError(
        f"`newtlab {command}` is not available yet in newtlab {__version__}; "
        "`newtlab plan -S DIR` shows what it will do"
    )


@app.command()
def deploy(specs: SpecsOpt = None, name: NameOpt = None) -> None:
    """Deploy the lab of a spec directory."""
    _not_yet("deploy")


@app.command()
def destroy(lab: Annotated[str | None, typer.Argument()] = None, specs: SpecsOpt = None) -> None:
    """Stop every process of a lab and remove its state."""
    _not_yet("destroy")


@app.command()
def status(
    lab: Annotated[str | None, typer.Argument()] = None,
    specs: SpecsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a lab's nodes and links, live."""
    _not_yet("status")


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """List deployed labs."""
    _not_yet("list")


@app.command()
def ssh(node: str, lab: LabOpt = None) -> None:
    """Open an SSH session to a node."""
    _not_yet("ssh")


@app.command()
def console(node: str, lab: LabOpt = None) -> None:
    """Attach to a node's serial console."""
    _not_yet("console")


@app.command()
def stop(node: str, lab: LabOpt = None) -> None:
    """Stop one node (its disk is kept)."""
    _not_yet("stop")


@app.command()
def start(node: str, lab: LabOpt = None) -> None:
    """Start a stopped node."""
    _not_yet("start")


@app.command()
def logs(node: str, lab: LabOpt = None) -> None:
    """Show a node's console log."""
    _not_yet("logs")


@app.command()
def provision(lab: Annotated[str | None, typer.Argument()] = None, specs: SpecsOpt = None) -> None:
    """Run newtron provisioning on the lab's devices."""
    _not_yet("provision")


def main() -> None:
    try:
        app()
    except NewtlabError as exc:
        if "--debug" in sys.argv:
            traceback.print_exc()
        err.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
