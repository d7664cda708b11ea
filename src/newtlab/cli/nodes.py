"""One node of a lab: reach it (ssh, exec, console), stop and start it, read its logs."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from ..errors import NewtlabError, UsageError
from .common import LabOpt, NodeArg, NodesArg, TargetArg, err, lab_of_node, progress


def _exec_ssh(node: str, lab: str | None, command: list[str], exact: bool) -> None:
    argv = lab_of_node(node, lab).ssh_command(node, command, exact=exact)
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        raise NewtlabError("ssh not found — install openssh-client") from None


PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def ssh(ctx: typer.Context, node: TargetArg, lab: LabOpt = None) -> None:
    """Open an SSH session to a node or virtual host (with the lab's key).

    `-- CMD…` runs a command as ssh does: the words, joined by spaces, are read
    by the remote shell (or the device's CLI).
    """
    _exec_ssh(node, lab, list(ctx.args), exact=False)


def exec_(ctx: typer.Context, node: TargetArg, lab: LabOpt = None) -> None:
    """Run exactly `-- ARGV…` on a Linux node or virtual host; exit with its status.

    Each word is quoted for the remote shell, like `docker exec`:
    `newtlab exec host1 -- sh -c 'echo $HOSTNAME'` runs that one `sh -c`.
    """
    args = list(ctx.args)  # click has taken the `--` out
    if args and args[0].startswith("-"):  # an option of ours it does not know: no command
        raise UsageError(
            f"newtlab exec does not take {args[0]}: its only option is --lab; "
            f"the command goes after `--` (newtlab exec {node} -- COMMAND [ARG…])"
        )
    if not args:
        raise NewtlabError(f"nothing to run: newtlab exec {node} -- COMMAND [ARG…]")
    _exec_ssh(node, lab, args, exact=True)


def console(node: NodeArg, lab: LabOpt = None) -> None:
    """Attach to a node's serial console (Ctrl-] leaves)."""

    def attached(address: str | tuple[str, int]) -> None:
        where = "" if isinstance(address, str) else f" on port {address[1]}"
        err.print(f"console of {node}{where} — Ctrl-] to leave", highlight=False, markup=False)

    try:
        lab_of_node(node, lab).console(node, attached=attached)
    except OSError as exc:
        raise NewtlabError(f"cannot reach the console of {node}: {exc.strerror or exc}") from None
    err.print("\nconsole closed")


def stop(
    nodes: NodesArg,
    lab: LabOpt = None,
    grace: Annotated[float, typer.Option(help="seconds to wait for ACPI powerdown")] = 30.0,
) -> None:
    """Stop nodes, together; their disks are kept and their neighbours stay connected."""
    nodes = list(dict.fromkeys(nodes))
    target = lab_of_node(nodes[0], lab)
    with progress(dict.fromkeys(nodes, ""), False) as view:
        target.stop(*nodes, grace=grace, progress=view)


def start(nodes: NodesArg, lab: LabOpt = None) -> None:
    """Start stopped nodes, booting together, and wait until each answers SSH; their
    links come back."""
    nodes = list(dict.fromkeys(nodes))
    target = lab_of_node(nodes[0], lab)
    with progress(dict.fromkeys(nodes, ""), False) as view:
        target.start(*nodes, progress=view)


def logs(
    node: NodeArg,
    lab: LabOpt = None,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="keep printing new output")
    ] = False,
    qemu_log: Annotated[
        bool, typer.Option("--qemu", help="QEMU's own log, not the console")
    ] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="as written, with the guest's terminal queries")
    ] = False,
) -> None:
    """Print a node's serial console log (or QEMU's log with --qemu)."""
    for chunk in lab_of_node(node, lab).logs(node, qemu=qemu_log, follow=follow, raw=raw):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
