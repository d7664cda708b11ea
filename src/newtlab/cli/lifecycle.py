"""A lab's life: plan, deploy, status, list, repair, provision, destroy."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.text import Text

from ..errors import NewtlabError, PortConflictError, RuntimeFailure, UsageError
from ..ops.provision_command import DEFAULT_COMMAND
from .common import (
    MIB,
    EngineOpt,
    JsonOpt,
    LabArg,
    NameOpt,
    SpecsOpt,
    err,
    lab_name,
    node_hosts,
    out,
    print_json,
    progress,
    require_specs,
)

if TYPE_CHECKING:
    from ..ops.provision import ProvisionResult


def plan(
    specs: SpecsOpt = None,
    name: NameOpt = None,
    json_out: JsonOpt = False,
    accel: Annotated[
        Literal["auto", "kvm", "tcg"],
        typer.Option(help="plan for this accelerator (auto: as for KVM, which deploy proves)"),
    ] = "auto",
    argv: Annotated[
        bool, typer.Option("--argv", help="also each VM's exact QEMU command line")
    ] = False,
    no_probe: Annotated[bool, typer.Option("--no-probe", help="skip the local port probe")] = False,
    engine: EngineOpt = None,
) -> None:
    """Show what deploy would do: VMs, NICs and MACs, ports, links (--argv: the QEMU
    command lines; --json: all of it)."""
    from ..lab import Lab
    from ..render import print_plan

    lab = Lab.load(require_specs(specs), name=name, accel="kvm" if accel == "auto" else accel,
                   engine=engine)  # fmt: skip
    if json_out:
        sys.stdout.write(lab.plan.to_json())
    else:
        print_plan(out, lab.plan, auto=accel == "auto", argv=argv)
    if not no_probe:
        conflicts = lab.port_conflicts()
        if conflicts:
            raise PortConflictError(conflicts)


AccelChoice = Annotated[str, typer.Option("--accel", help="auto (probe KVM, else TCG), kvm or tcg")]


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
        typer.Option(
            "--boot-parallel",
            min=0,
            help="VMs booting at once per host (0: all; default: by its cores and accelerator)",
        ),
    ] = None,
    engine: EngineOpt = None,
    validate_after: Annotated[
        bool,
        typer.Option(
            "--validate",
            help="run the declared tests after deploy (exit 1 if one fails; the lab stays)",
        ),
    ] = False,
    from_snapshot: Annotated[
        str | None,
        typer.Option(
            "--from-snapshot",
            metavar="NAME",
            help="the VMs resume this snapshot of the lab instead of booting",
        ),
    ] = None,
) -> None:
    """Deploy the lab of a spec directory: VMs, links, console bootstrap, SSH."""
    from ..lab import Lab
    from ..render import print_status

    if accel not in ("auto", "kvm", "tcg"):
        raise NewtlabError(f"--accel must be auto, kvm or tcg (got {accel!r})")
    lab = Lab.load(require_specs(specs), name=name, engine=engine)
    if validate_after and not lab.plan.checks:  # said before anything starts
        raise UsageError(f"--validate: {lab.plan.spec_dir}/topology.json declares no tests "
                         "(newtlab.validate)")  # fmt: skip
    try:
        with progress(node_hosts(lab), json_out) as view:
            status_data = lab.deploy(
                force=force,
                accel=accel,
                upload=not no_upload,
                overcommit=overcommit,
                boot_parallel=boot_parallel,
                from_snapshot=from_snapshot,
                progress=view,
            )
            if provision_after:
                report_provision(lab.provision(parallel=parallel, progress=view), json_out=False)
    except KeyboardInterrupt:
        err.print(
            f"deploy interrupted: what it started is in the lab's state — `newtlab status "
            f"{lab.name}` shows it, `newtlab destroy {lab.name}` removes it",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(130) from None
    if not json_out:
        print_status(out, status_data)
    report = None
    if validate_after:  # the declared tests, shown as `newtlab validate` shows them
        from .validate import run

        report = run(lab, lab.plan.checks, err if json_out else out, table=not json_out)
    if json_out:
        extra = {"validation": report.to_json()} if report is not None else {}
        print_json({**status_data.to_json(), **extra})
    if report is not None and not report.passed:
        raise typer.Exit(1)


def destroy(
    lab: LabArg = None,
    specs: SpecsOpt = None,
    name: NameOpt = None,
    grace: Annotated[float, typer.Option(help="seconds to wait for ACPI powerdown")] = 5.0,
    json_out: JsonOpt = False,
) -> None:
    """Stop every process of a lab, restore its profiles and remove its state (-S: also
    on the servers its spec dir names, when the lab's state here is lost)."""
    from ..lab import destroy_lab

    target = lab_name(lab, specs, name, deployed=False)
    with progress({}, json_out) as view:
        warnings = destroy_lab(target, grace=grace, progress=view, specs=specs)
    for warning in warnings:
        err.print(Text("warning: ", style="yellow") + Text(warning), soft_wrap=True)
    if json_out:
        print_json({"lab": target, "destroyed": True, "warnings": warnings})
    else:
        out.print(f"lab {target} destroyed")


def status(
    lab: LabArg = None,
    specs: SpecsOpt = None,
    name: NameOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a lab's nodes (live process check) and links (live bridge counters)."""
    from ..lab import Lab
    from ..render import print_status

    chosen = Lab.attach(lab_name(lab, specs, name))
    data, kept = chosen.status(), chosen.snapshots()
    if json_out:
        print_json({**data.to_json(), "snapshots": [s.summary() for s in kept]})
    else:
        print_status(out, data)
        if kept:
            shown = ", ".join(f"{s.name} ({s.bytes / MIB:.0f} MiB)" for s in kept)
            out.print(f"snapshots: {shown}", highlight=False)
    if data.unreachable:  # what is shown of those servers is unknown, not down
        raise RuntimeFailure(
            "status is incomplete: "
            + "; ".join(f"server {s} did not answer ({why})" for s, why in data.unreachable.items())
        )


def list_(json_out: JsonOpt = False) -> None:
    """List deployed labs (and say how many snapshots are kept)."""
    from ..home import has_snapshots, list_labs

    names = list_labs()
    rows = []
    if names:  # only then the machinery that asks each host
        from ..lab import Lab

        rows = [Lab.attach(name).status() for name in names]
    kept = []
    if has_snapshots():  # only then their models: `list` stays quick
        from ..snapshots import list_snapshots

        kept = list_snapshots()
    if json_out:
        print_json(
            [
                {"lab": r.lab, "created": r.created, "spec_dir": r.spec_dir,
                 "nodes": len(r.nodes), "running": r.running(),
                 "snapshots": [s.name for s in kept if s.lab == r.lab]}
                for r in rows
            ]
        )  # fmt: skip
        return
    if not rows:
        out.print("no labs deployed")
    else:
        from ..render import labs_table

        out.print(labs_table(rows))
    if kept:  # they outlive their labs: say they are there, and what they take
        size = sum(s.bytes for s in kept) / MIB
        out.print(f"{len(kept)} snapshot{'s' if len(kept) > 1 else ''} kept ({size:.0f} MiB) — "
                  "`newtlab snapshot list`", highlight=False)  # fmt: skip


def repair(
    lab: LabArg = None,
    specs: SpecsOpt = None,
    name: NameOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Bring back what died: a bridge that is down, VMs whose QEMU exited.

    VMs keep running while their bridge is restarted; nodes stopped with
    `newtlab stop` stay stopped.
    """
    from ..lab import Lab

    target = Lab.attach(lab_name(lab, specs, name))
    with progress({}, json_out) as view:
        actions = target.repair(progress=view)
    if json_out:
        print_json({"lab": target.name, "repaired": actions})
        return
    for action in actions:
        out.print(action, highlight=False, markup=False)
    if not actions:
        out.print(f"lab {target.name}: nothing to repair")


def provision(
    lab: LabArg = None,
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
    from ..lab import Lab

    target = Lab.attach(lab_name(lab, specs))
    with progress({}, json_out) as view:
        results = target.provision(device, command=command, parallel=parallel, progress=view)
    report_provision(results, json_out)


def report_provision(results: list[ProvisionResult], json_out: bool) -> None:
    if json_out:
        print_json([r.__dict__ for r in results])
    failed = [r for r in results if r.returncode != 0]
    for r in failed:
        err.print(Text(f"{r.device}: exit {r.returncode}\n{r.output.strip()}"), soft_wrap=True)
    if failed:
        raise RuntimeFailure(f"provisioning failed on {len(failed)} of {len(results)} devices")
