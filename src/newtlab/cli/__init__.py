"""The ``newtlab`` command line: parse, call the Lab API, render — no logic of its own.

One module per group of verbs (``lifecycle``, ``nodes``, ``links``, ``snapshots``,
``export``, ``machine``); this one puts them on the command line in the order ``--help``
lists them. Each command imports what it uses when it runs: ``--help``,
``version`` and a TAB press stay instant, ``list`` and ``status`` never load
the deploy machinery.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer
from rich.text import Text

from ..errors import NewtlabError
from . import export, lifecycle, links, machine, nodes, snapshots, validate
from .common import err
from .options import lift

app = typer.Typer(
    name="newtlab",
    help="Realise newtron network topologies as connected QEMU virtual machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help, as git and ip print it: typer's rich help imports rich.markdown,
    # which alone more than doubles the start-up of `newtlab --help` (bench/cli.py).
    rich_markup_mode=None,
)
_options = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks on errors")] = False,
) -> None:
    """newtlab: deploy, operate and destroy VM labs from newtron specs."""
    _options["debug"] = _options["debug"] or debug  # main() reports errors after the command


for command, name, settings in (
    (machine.version, None, None),
    (lifecycle.plan, None, None),
    (lifecycle.deploy, None, None),
    (lifecycle.destroy, None, None),
    (lifecycle.status, None, None),
    (lifecycle.list_, "list", None),
    (nodes.ssh, None, nodes.PASS_THROUGH),
    (nodes.exec_, "exec", nodes.PASS_THROUGH),
    (nodes.console, None, None),
    (nodes.stop, None, None),
    (nodes.start, None, None),
    (nodes.logs, None, None),
    (lifecycle.repair, None, None),
    (lifecycle.provision, "provision", None),
    (snapshots.save, None, None),
    (validate.validate, None, None),
    (machine.platforms, None, None),
    (machine.doctor, None, None),
    (export.graph, None, None),
    (export.ssh_config, "ssh-config", None),
    (export.inventory, None, None),
    (machine.prune, None, None),
):
    app.command(name, context_settings=settings)(command)
app.add_typer(links.link_app, name="link")
app.command()(links.capture)
app.add_typer(snapshots.snapshot_app, name="snapshot")
app.add_typer(machine.image_app, name="image")


def _show_chain(exc: BaseException) -> None:
    """The traceback with every exception behind it, those a ``raise … from None``
    hid from users included: --debug is for finding where it started."""
    cause: BaseException | None = exc
    while cause is not None:
        cause.__suppress_context__ = False
        cause = cause.__cause__ or cause.__context__
    traceback.print_exception(exc)


def main() -> None:
    command = typer.main.get_command(app)
    try:
        if os.environ.get("_NEWTLAB_COMPLETE"):  # a TAB press: the words are the shell's
            words, debug = sys.argv[1:], False
        else:
            words, debug = lift(command, sys.argv[1:])
        _options["debug"] = _options["debug"] or debug
        command.main(words, prog_name="newtlab")
    except NewtlabError as exc:
        if _options["debug"]:
            _show_chain(exc)
        err.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
