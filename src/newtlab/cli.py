"""The ``newtlab`` command line: parse, call the Lab API, render. No logic of its own."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.text import Text

from . import __version__
from .errors import NewtlabError, PortConflictError, RuntimeFailure
from .ops.provision_command import DEFAULT_COMMAND

if TYPE_CHECKING:
    from .lab import Lab
    from .ops.provision import ProvisionResult
    from .plan.model import LinkSettings
    from .render import ProgressView

# Each command imports what it uses when it runs: `--help` and `version` stay
# instant, `list` and `status` never load the deploy machinery.

app = typer.Typer(
    name="newtlab",
    help="Realise newtron network topologies as connected QEMU virtual machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help, as git and ip print it: typer's rich help imports rich.markdown,
    # which alone more than doubles the start-up of `newtlab --help` (bench/cli.py).
    rich_markup_mode=None,
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
    _options["debug"] = debug  # main() reports errors after the command's context is gone


_options = {"debug": False}


@app.command()
def version() -> None:
    """Print newtlab's version."""
    out.print(f"newtlab {__version__}")


@app.command()
def plan(
    specs: SpecsOpt = None,
    name: NameOpt = None,
    json_out: JsonOpt = False,
    accel: Annotated[Literal["kvm", "tcg"], typer.Option(help="plan for this accelerator")] = "kvm",
    no_probe: Annotated[bool, typer.Option("--no-probe", help="skip the local port probe")] = False,
) -> None:
    """Show exactly what deploy would do: VMs, NICs, ports, links, QEMU argv."""
    from .lab import Lab
    from .render import print_plan

    lab = Lab.load(_require_specs(specs), name=name, accel=accel)
    if json_out:
        sys.stdout.write(lab.plan.to_json())
    else:
        print_plan(out, lab.plan)
    if not no_probe:
        conflicts = lab.port_conflicts()
        if conflicts:
            raise PortConflictError(conflicts)


AccelChoice = Annotated[str, typer.Option("--accel", help="auto (probe KVM, else TCG), kvm or tcg")]


def _lab_name(
    lab: str | None, specs: Path | None, name: str | None = None, deployed: bool = True
) -> str:
    """The lab a lab command means: -S DIR (and --name), a lab name, or the only lab.

    ``deployed=False`` accepts a name without state (destroy cleans up by tags).
    """
    from .plan.plan import check_lab_name, lab_name_for
    from .state import find_lab

    if specs is not None:
        return check_lab_name(name or lab_name_for(specs))
    if not deployed and (lab or name):
        return check_lab_name(lab or name or "")
    return find_lab(lab or name)


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _progress(nodes: dict[str, str], quiet: bool) -> ProgressView:
    """Live progress for ``nodes`` (name → host), on stderr when stdout is for --json."""
    from .render import ProgressView

    return ProgressView(err if quiet else out, nodes)


def _node_hosts(lab: Lab) -> dict[str, str]:
    return {n.name: n.host for n in lab.plan.nodes}


@app.command()
def deploy(
    specs: SpecsOpt = None,
    name: NameOpt = None,
    force: Annotated[bool, typer.Option("--force", help="replace a deployed lab")] = False,
    accel: AccelChoice = "auto",
    json_out: JsonOpt = False,
    provision_after: Annotated[
        bool, typer.Option("--provision", help="run provisioning after deploy")
    ] = False,
    parallel: Annotated[int, typer.Option(help="parallel provisioning jobs")] = 1,
    no_upload: Annotated[
        bool,
        typer.Option("--no-upload", help="a base image missing on a server is an error"),
    ] = False,
    overcommit: Annotated[
        bool,
        typer.Option("--overcommit", help="deploy even if the VMs need more than a host has"),
    ] = False,
    boot_parallel: Annotated[
        int | None,
        typer.Option("--boot-parallel", min=0, help="VMs booting at once per host (0: all)"),
    ] = None,
) -> None:
    """Deploy the lab of a spec directory: VMs, links, console bootstrap, SSH."""
    from .lab import Lab
    from .render import print_status

    if accel not in ("auto", "kvm", "tcg"):
        raise NewtlabError(f"--accel must be auto, kvm or tcg (got {accel!r})")
    lab = Lab.load(_require_specs(specs), name=name)
    try:
        with _progress(_node_hosts(lab), json_out) as view:
            status_data = lab.deploy(
                force=force,
                accel=accel,
                upload=not no_upload,
                overcommit=overcommit,
                **({} if boot_parallel is None else {"boot_parallel": boot_parallel}),
                progress=view,
            )
            if provision_after:
                _report_provision(lab.provision(parallel=parallel, progress=view), json_out=False)
    except KeyboardInterrupt:
        err.print(
            f"deploy interrupted: what it started is in the lab's state — `newtlab status "
            f"{lab.name}` shows it, `newtlab destroy {lab.name}` removes it",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(130) from None
    if json_out:
        _print_json(status_data.to_json())
    else:
        print_status(out, status_data)


@app.command()
def destroy(
    lab: Annotated[str | None, typer.Argument(help="lab name")] = None,
    specs: SpecsOpt = None,
    name: NameOpt = None,
    grace: Annotated[float, typer.Option(help="seconds to wait for ACPI powerdown")] = 5.0,
    json_out: JsonOpt = False,
) -> None:
    """Stop every process of a lab, restore its profiles and remove its state."""
    from .lab import destroy_lab

    target = _lab_name(lab, specs, name, deployed=False)
    with _progress({}, json_out) as view:
        warnings = destroy_lab(target, grace=grace, progress=view)
    for warning in warnings:
        err.print(Text("warning: ", style="yellow") + Text(warning), soft_wrap=True)
    if json_out:
        _print_json({"lab": target, "destroyed": True, "warnings": warnings})
    else:
        out.print(f"lab {target} destroyed")


@app.command()
def status(
    lab: Annotated[str | None, typer.Argument(help="lab name")] = None,
    specs: SpecsOpt = None,
    name: NameOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a lab's nodes (live process check) and links (live bridge counters)."""
    from .lab import Lab
    from .render import print_status

    data = Lab.attach(_lab_name(lab, specs, name)).status()
    if json_out:
        _print_json(data.to_json())
    else:
        print_status(out, data)


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """List deployed labs."""
    from rich.table import Table

    from .home import list_labs

    names = list_labs()
    rows = []
    if names:  # only then the machinery that asks each host
        from .lab import Lab

        rows = [Lab.attach(name).status() for name in names]
    if json_out:
        _print_json(
            [
                {"lab": r.lab, "created": r.created, "spec_dir": r.spec_dir,
                 "nodes": len(r.nodes), "running": r.running()}
                for r in rows
            ]
        )  # fmt: skip
        return
    if not rows:
        out.print("no labs deployed")
        return
    table = Table()
    for column in ("LAB", "NODES", "RUNNING", "DEPLOYED", "SPECS"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.lab, str(len(r.nodes)), str(r.running()), r.created[:19], r.spec_dir)
    out.print(table)


def _exec_ssh(node: str, lab: str | None, command: list[str], exact: bool) -> None:
    from .lab import lab_of_node

    argv = lab_of_node(node, lab).ssh_command(node, command, exact=exact)
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        raise NewtlabError("ssh not found — install openssh-client") from None


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=_PASS_THROUGH)
def ssh(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="node or virtual host name")],
    lab: LabOpt = None,
) -> None:
    """Open an SSH session to a node or virtual host (with the lab's key).

    `-- CMD…` runs a command as ssh does: the words, joined by spaces, are read
    by the remote shell (or the device's CLI).
    """
    _exec_ssh(node, lab, list(ctx.args), exact=False)


@app.command("exec", context_settings=_PASS_THROUGH)
def exec_(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="node or virtual host name")],
    lab: LabOpt = None,
) -> None:
    """Run exactly `-- ARGV…` on a Linux node or virtual host; exit with its status.

    Each word is quoted for the remote shell, like `docker exec`:
    `newtlab exec host1 -- sh -c 'echo $HOSTNAME'` runs that one `sh -c`.
    """
    args = list(ctx.args)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        raise NewtlabError(f"nothing to run: newtlab exec {node} -- COMMAND [ARG…]")
    _exec_ssh(node, lab, args, exact=True)


@app.command()
def console(node: Annotated[str, typer.Argument(help="node name")], lab: LabOpt = None) -> None:
    """Attach to a node's serial console (Ctrl-] leaves)."""
    from .access import node_plan
    from .lab import lab_of_node
    from .state import load_state

    target = lab_of_node(node, lab)
    plan_node = node_plan(load_state(target.name), node, "console")
    err.print(
        f"console of {node} on port {plan_node.console_port} — Ctrl-] to leave",
        highlight=False,
        markup=False,
    )
    try:
        target.console(node)
    except OSError as exc:
        raise NewtlabError(f"cannot reach the console of {node}: {exc.strerror or exc}") from None
    err.print("\nconsole closed")


@app.command()
def stop(
    node: Annotated[str, typer.Argument(help="node name")],
    lab: LabOpt = None,
    grace: Annotated[float, typer.Option(help="seconds to wait for ACPI powerdown")] = 30.0,
) -> None:
    """Stop one node; its disk is kept and its neighbours stay connected."""
    from .lab import lab_of_node

    target = lab_of_node(node, lab)
    with _progress({node: ""}, False) as view:
        target.stop(node, grace=grace, progress=view)


@app.command()
def start(node: Annotated[str, typer.Argument(help="node name")], lab: LabOpt = None) -> None:
    """Start a stopped node and wait until it answers SSH; its links come back."""
    from .lab import lab_of_node

    target = lab_of_node(node, lab)
    with _progress({node: ""}, False) as view:
        target.start(node, progress=view)


@app.command()
def logs(
    node: Annotated[str, typer.Argument(help="node name")],
    lab: LabOpt = None,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="keep printing new output")
    ] = False,
    qemu_log: Annotated[
        bool, typer.Option("--qemu", help="QEMU's own log, not the console")
    ] = False,
) -> None:
    """Print a node's serial console log (or QEMU's log with --qemu)."""
    from .lab import lab_of_node

    lab_of_node(node, lab).logs(node, qemu=qemu_log, follow=follow)


@app.command()
def repair(
    lab: Annotated[str | None, typer.Argument(help="lab name")] = None,
    specs: SpecsOpt = None,
    name: NameOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Bring back what died: a bridge that is down, VMs whose QEMU exited.

    VMs keep running while their bridge is restarted; nodes stopped with
    `newtlab stop` stay stopped.
    """
    from .lab import Lab

    target = Lab.attach(_lab_name(lab, specs, name))
    with _progress({}, json_out) as view:
        actions = target.repair(progress=view)
    if json_out:
        _print_json({"lab": target.name, "repaired": actions})
        return
    for action in actions:
        out.print(action, highlight=False, markup=False)
    if not actions:
        out.print(f"lab {target.name}: nothing to repair")


@app.command("provision")
def provision_(
    lab: Annotated[str | None, typer.Argument(help="lab name")] = None,
    specs: SpecsOpt = None,
    device: Annotated[
        list[str] | None, typer.Option("-d", "--device", help="only these devices")
    ] = None,
    parallel: Annotated[int, typer.Option(help="devices provisioned at once")] = 1,
    command: Annotated[
        str, typer.Option(help="command per device; {spec_dir}, {device}, {lab} are filled in")
    ] = DEFAULT_COMMAND,
    json_out: JsonOpt = False,
) -> None:
    """Run `newtron provision` (or --command) for each device of a deployed lab."""
    from .lab import Lab

    target = Lab.attach(_lab_name(lab, specs))
    with _progress({}, json_out) as view:
        results = target.provision(device, command=command, parallel=parallel, progress=view)
    _report_provision(results, json_out)


def _report_provision(results: list[ProvisionResult], json_out: bool) -> None:
    if json_out:
        _print_json([r.__dict__ for r in results])
    failed = [r for r in results if r.returncode != 0]
    for r in failed:
        err.print(Text(f"{r.device}: exit {r.returncode}\n{r.output.strip()}"), soft_wrap=True)
    if failed:
        raise RuntimeFailure(f"provisioning failed on {len(failed)} of {len(results)} devices")


@app.command()
def platforms(
    name: Annotated[str | None, typer.Argument(help="one entry, in full")] = None,
    json_out: JsonOpt = False,
) -> None:
    """newtlab's platform catalog: what a platforms.json entry's "base" may name."""
    from .render import catalog_table
    from .spec.catalog import catalog

    entries = catalog()
    if name is None:
        if json_out:
            _print_json(entries)
        else:
            out.print(catalog_table(entries))
        return
    if name not in entries:
        err.print(f"error: no platform {name!r} in the catalog; it has: {', '.join(entries)}")
        raise typer.Exit(2)
    if json_out:
        _print_json(entries[name])
    else:
        out.print_json(json.dumps(entries[name]))


@app.command()
def doctor(specs: SpecsOpt = None, name: NameOpt = None, json_out: JsonOpt = False) -> None:
    """Check that this machine (and with -S, the lab's ports and servers) can run labs."""
    from rich.table import Table

    from .lab import Lab

    lab = Lab.load(specs, name=name) if specs is not None else None
    checks = lab.doctor() if lab is not None else Lab.doctor_machine()
    if json_out:
        _print_json([c.as_dict() for c in checks])
    else:
        table = Table()
        for column in ("HOST", "CHECK", "", "DETAIL", "FIX"):
            table.add_column(column)
        style = {"OK": "green", "WARN": "yellow", "FAIL": "bold red"}
        for c in checks:
            table.add_row(c.host, c.what, f"[{style[c.level]}]{c.level}[/]", c.detail, c.fix)
        out.print(table)
    if any(c.level == "FAIL" for c in checks):
        raise typer.Exit(1)


@app.command()
def graph(
    lab: Annotated[
        str | None, typer.Argument(help="a deployed lab (default: the only one)")
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
    import time

    from .agent.fsutil import atomic_write
    from .export.dot import to_dot
    from .export.html import to_html
    from .export.mermaid import to_mermaid
    from .lab import Lab

    formats = {"mermaid": to_mermaid, "dot": to_dot}
    if format_ not in (*formats, "html"):
        raise NewtlabError(f"--format must be mermaid, dot or html (got {format_!r})")
    if watch is not None and (output is None or specs is not None):
        raise NewtlabError("--watch redraws a deployed lab into a file: give LAB and -o FILE")
    attached = None if specs is not None else Lab.attach(_lab_name(lab, None))

    def draw() -> str:
        if attached is None:
            drawn = Lab.load(_require_specs(specs)).graph(live=False)
        else:
            drawn = attached.graph()
        if format_ == "html":
            return to_html(drawn, time.strftime("%Y-%m-%d %H:%M:%S"))
        return formats[format_](drawn)

    while True:
        text = draw()
        if output is None:
            sys.stdout.write(text)
            return
        atomic_write(output, text.encode())  # a browser reloading it never reads half
        if watch is None:
            return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return


@app.command("ssh-config")
def ssh_config(
    lab: Annotated[str | None, typer.Argument(help="lab name (default: the only one)")] = None,
    prefix: Annotated[str, typer.Option(help="put before each Host name, e.g. lab1-")] = "",
) -> None:
    """Print OpenSSH Host entries for every node and virtual host: `ssh -F FILE NODE`."""
    from .lab import Lab

    sys.stdout.write(Lab.attach(_lab_name(lab, None)).ssh_config(prefix))


@app.command()
def inventory(
    lab: Annotated[str | None, typer.Argument(help="lab name (default: the only one)")] = None,
    format_: Annotated[str, typer.Option("--format", help="ansible or json")] = "ansible",
) -> None:
    """Print an inventory of every node and virtual host: address, port, user, key and
    network_os; Ansible's (groups by device type and server; save as *.yml) or JSON."""
    from .lab import Lab

    if format_ not in ("ansible", "json"):
        raise NewtlabError(f"--format must be ansible or json (got {format_!r})")
    attached = Lab.attach(_lab_name(lab, None))
    _print_json(attached.inventory() if format_ == "ansible" else attached.nodes())


@app.command()
def prune(
    specs: Annotated[
        Path | None,
        typer.Option(
            "-S",
            "--specs",
            metavar="<path>",
            help="also look on the servers this spec directory names",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="remove them (default: only list)")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List what this NEWTLAB_HOME left behind — orphaned processes, dead labs, stale
    locks, and on this machine and its labs' servers the shipped runtimes and uploaded
    images nothing uses — and with --yes remove it (labs as destroy does)."""
    from rich.table import Table

    from .lab import Lab, destroy_lab
    from .ops.prune import find_orphans, labs_servers, prune_caches, remove_lock
    from .plan.model import LOCAL_HOST

    servers = labs_servers()
    if specs is not None:
        servers += [h for h in Lab.load(_require_specs(specs)).plan.hosts if h.name != LOCAL_HOST]
    orphans = find_orphans()
    if yes:
        for orphan in orphans:
            if orphan.kind != "lock":
                destroy_lab(orphan.lab, grace=2.0)
            remove_lock(orphan.lab)  # a destroyed lab's lock is stale too
    caches = prune_caches(servers, remove=yes)
    if json_out:
        _print_json(
            {"orphans": [o.as_dict() for o in orphans], **caches.as_dict(), "removed": bool(yes)}
        )
        return
    for server, why in caches.unreachable.items():
        err.print(f"server {server} did not answer, its caches were not looked at: {why}",
                  highlight=False, markup=False, soft_wrap=True)  # fmt: skip
    rows: list[tuple[str, str, str]] = [(o.kind, o.lab, o.detail) for o in orphans]
    rows += [(c.kind, host, f"{c.path} ({c.bytes >> 20} MiB): {c.detail}")
             for host, found in caches.found.items() for c in found]  # fmt: skip
    if not rows:
        out.print("nothing to prune")
        return
    table = Table()
    for column in ("KIND", "LAB / HOST", "WHAT"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    out.print(table)
    out.print("removed" if yes else "`newtlab prune --yes` removes them")


link_app = typer.Typer(
    help="Shape a deployed lab's links: impairment and cable pulls.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(link_app, name="link")
EndArg = Annotated[str, typer.Argument(metavar="NODE:IFACE", help="either end of the link")]


def _lab_of_end(end: str, lab: str | None) -> Lab:
    from .lab import lab_of_node

    node, sep, iface = end.partition(":")
    if not sep or not node or not iface:
        raise NewtlabError(f"{end!r}: name a link by one of its ends, NODE:IFACE")
    return lab_of_node(node, lab)


def _print_settings(end: str, settings: LinkSettings, json_out: bool) -> None:
    from .plan.impairments import describe

    if json_out:
        _print_json({"end": end, **settings.model_dump()})
        return
    a, z = describe(settings.a), describe(settings.z)
    cable = "cable pulled" if settings.down else "cable in"
    shaped = "; ".join(f"{d}: {t}" for d, t in (("A→Z", a), ("Z→A", z)) if t) or "no impairment"
    out.print(f"{end}: {cable}; {shaped}", highlight=False)


@link_app.command("set")
def link_set(
    end: EndArg,
    delay: Annotated[str | None, typer.Option(help="e.g. 20ms")] = None,
    jitter: Annotated[str | None, typer.Option(help="± on the delay, e.g. 5ms")] = None,
    loss: Annotated[str | None, typer.Option(help="frames dropped, e.g. 1%")] = None,
    rate: Annotated[
        str | None, typer.Option(help="e.g. 100mbit (a bounded queue, then drops)")
    ] = None,
    corrupt: Annotated[
        str | None, typer.Option(help="frames with a bit flipped, e.g. 0.1%")
    ] = None,
    duplicate: Annotated[str | None, typer.Option(help="frames sent twice, e.g. 1%")] = None,
    direction: Annotated[
        Literal["both", "out", "in"],
        typer.Option(help="both; out: what NODE:IFACE sends; in: what it receives"),
    ] = "both",
    lab: LabOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Impair a link, frame by frame (frames stay whole, delay keeps their order); what
    was set before and is not named here stays."""
    values = {"delay": delay, "jitter": jitter, "loss": loss, "rate": rate,
              "corrupt": corrupt, "duplicate": duplicate}  # fmt: skip
    settings = _lab_of_end(end, lab).link_set(
        end,
        {k: v for k, v in values.items() if v is not None},
        direction,
    )
    _print_settings(end, settings, json_out)


@link_app.command("reset")
def link_reset(end: EndArg, lab: LabOpt = None, json_out: JsonOpt = False) -> None:
    """Remove a link's impairment, both ways (a pulled cable stays pulled)."""
    _print_settings(end, _lab_of_end(end, lab).link_reset(end), json_out)


@link_app.command("down")
def link_down(end: EndArg, lab: LabOpt = None, json_out: JsonOpt = False) -> None:
    """Pull the link's cable: both guests see their carrier drop and no frame crosses."""
    _print_settings(end, _lab_of_end(end, lab).link_down(end), json_out)


@link_app.command("up")
def link_up(end: EndArg, lab: LabOpt = None, json_out: JsonOpt = False) -> None:
    """Plug the cable back: carriers up on both guests, frames cross again."""
    _print_settings(end, _lab_of_end(end, lab).link_up(end), json_out)


@link_app.command("show")
def link_show(
    lab: Annotated[str | None, typer.Argument(help="lab name (default: the only one)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Every link of a lab: cable in or pulled, and each direction's impairment."""
    from rich.table import Table

    from .lab import Lab
    from .plan.impairments import describe

    settings = Lab.attach(_lab_name(lab, None)).link_settings()
    if json_out:
        _print_json({name: s.model_dump() for name, s in settings.items()})
        return
    table = Table()
    for column in ("LINK", "CABLE", "A→Z", "Z→A"):
        table.add_column(column)
    for name, s in settings.items():
        a, _, z = name.partition("--")
        cable = "[red]pulled[/]" if s.down else "in"
        table.add_row(f"{a} ↔ {z}", cable, describe(s.a) or "-", describe(s.z) or "-")
    out.print(table)


@app.command()
def capture(
    end: EndArg,
    write: Annotated[
        str | None, typer.Option("-w", help="pcap file to write, or - for stdout")
    ] = None,
    duration: Annotated[float, typer.Option(min=0, help="stop after this many seconds")] = 0,
    count: Annotated[int, typer.Option(min=0, help="stop after this many frames")] = 0,
    lab: LabOpt = None,
) -> None:
    """Capture the frames crossing a link, both ways, as pcap: `-w -` streams them
    (`| wireshark -k -i -`, `| tcpdump -r -`); Ctrl-C leaves a valid file."""
    target = write if write is not None else ("-" if not sys.stdout.isatty() else None)
    if target is None:
        raise NewtlabError("give -w FILE, or -w - and pipe it (e.g. into tcpdump -r -)")
    chosen = _lab_of_end(end, lab)
    if target != "-":
        err.print(f"capturing {end} into {target} — Ctrl-C stops", highlight=False)
    # stdout for -, else the file (closed below, also on Ctrl-C)
    stream = sys.stdout.buffer if target == "-" else open(target, "wb")  # noqa: SIM115

    def sink(data: bytes) -> None:
        stream.write(data)
        stream.flush()  # a reader following it sees frames as they pass

    try:
        chosen.capture(end, sink, count=count, duration=duration)
    except (KeyboardInterrupt, BrokenPipeError):
        pass  # Ctrl-C, or the reader (tcpdump -c N, head) had enough: what was written is whole
    finally:
        if target != "-":
            stream.close()


image_app = typer.Typer(
    help="Build the images newtlab provides.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(image_app, name="image")


@image_app.command("build")
def image_build(
    kind: Annotated[str, typer.Argument(help="image to build: host")],
    name: Annotated[
        str | None,
        typer.Option(
            help="also make it available under this file name (e.g. alpine-testhost.qcow2)"
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Build newtlab's small Linux host/router image into NEWTLAB_HOME/images."""
    if kind != "host":
        raise NewtlabError(f"unknown image {kind!r}: newtlab builds the 'host' image")
    from .home import cache_dir, images_dir
    from .image import ImageBuildError, build_host_image

    try:
        built = build_host_image(
            images_dir(), cache_dir(), lambda line: err.print(line, highlight=False), name=name
        )
    except ImageBuildError as exc:
        raise RuntimeFailure(str(exc)) from None
    if json_out:
        _print_json({"image": str(built.image)})
    else:
        out.print(f"built {built.image}")


def main() -> None:
    try:
        app()
    except NewtlabError as exc:
        if _options["debug"]:
            traceback.print_exc()
        err.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
