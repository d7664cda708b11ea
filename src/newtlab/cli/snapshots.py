"""A lab's snapshots (save, list, restore, delete), and its running configurations saved
(``newtlab save``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import MIB, JsonOpt, OnlyLabArg, lab_name, out, print_json, progress

if TYPE_CHECKING:
    from ..lab import Lab

snapshot_app = typer.Typer(
    help="Save a whole lab at one moment (memory and disks) and bring it back.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="the snapshot's name")]


def _snapshot_lab(name: str, lab: str | None) -> Lab:
    """The lab whose snapshot ``name`` is meant (deployed or not): the one named, else the
    only lab that has a snapshot of that name."""
    from ..errors import LabStateError
    from ..lab import Lab
    from ..plan.plan import check_lab_name
    from ..snapshots import list_snapshots, load_snapshot

    if lab is None:
        having = sorted({s.lab for s in list_snapshots() if s.name == name})
        if not having:
            raise LabStateError(f"no lab has a snapshot {name!r} (`newtlab snapshot list`)")
        if len(having) > 1:
            raise LabStateError(f"labs {', '.join(having)} each have a snapshot {name}: "
                                "name the lab too")  # fmt: skip
        lab = having[0]
    return Lab(lab, load_snapshot(check_lab_name(lab), name).plan)


@snapshot_app.command("save")
def snapshot_save(
    name: NameArg,
    lab: OnlyLabArg = None,
    force: Annotated[bool, typer.Option("--force", help="replace a snapshot of that name")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Pause every VM of a lab at one moment, save each (memory, devices, disk) with the
    links' settings, resume them; kept under NEWTLAB_HOME/snapshots after a destroy."""
    from ..lab import Lab

    chosen = Lab.attach(lab_name(lab, None))
    with progress({n.name: n.host for n in chosen.plan.nodes}, json_out) as view:
        snapshot = chosen.snapshot(name, replace=force, progress=view)
    if json_out:
        print_json(snapshot.summary())
        return
    out.print(f"snapshot {name} of lab {chosen.name}: {len(snapshot.vms)} VMs, "
              f"{snapshot.bytes / MIB:.0f} MiB; the VMs were paused "
              f"{snapshot.paused_seconds:.1f} s", highlight=False)  # fmt: skip


@snapshot_app.command("list")
def snapshot_list(lab: OnlyLabArg = None, json_out: JsonOpt = False) -> None:
    """Every snapshot of this home (of LAB if given): when, which VMs, their size."""
    from rich.table import Table

    from ..snapshots import list_snapshots

    found = [s.summary() for s in list_snapshots(lab)]
    if json_out:
        print_json(found)
        return
    if not found:
        out.print("no snapshots" + (f" of lab {lab}" if lab else ""))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("LAB", "NAME", "CREATED", "VMS", "SIZE", "PAUSED"):
        table.add_column(column)
    for item in found:
        vms = item["vms"]
        assert isinstance(vms, list)
        table.add_row(str(item["lab"]), str(item["name"]), str(item["created"]),
                      str(len(vms)), f"{int(str(item['bytes'])) / MIB:.0f} MiB",
                      f"{item['paused_seconds']} s")  # fmt: skip
    out.print(table)


@snapshot_app.command("restore")
def snapshot_restore(name: NameArg, lab: OnlyLabArg = None, json_out: JsonOpt = False) -> None:
    """Bring a lab back to a snapshot: in place if it is deployed (same VMs, same
    processes), else deployed again from it."""
    from ..render import print_status

    chosen = _snapshot_lab(name, lab)
    with progress({n.name: n.host for n in chosen.plan.nodes}, json_out) as view:
        status = chosen.restore(name, progress=view)
    if json_out:
        print_json(status.to_json())
        return
    print_status(out, status)


@snapshot_app.command("delete")
def snapshot_delete(name: NameArg, lab: OnlyLabArg = None) -> None:
    """Remove a snapshot: its record and every host's copy of its VMs."""
    chosen = _snapshot_lab(name, lab)
    chosen.delete_snapshot(name)
    out.print(f"snapshot {name} of lab {chosen.name} deleted", highlight=False)


def save(
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="[LAB] [NODE]...", help="a lab (default: the only one), nodes"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="directory to write (default: the spec dir's configs/)"
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Save each node's running configuration (as its platform's vm_save reads it) as
    configs/<device>.cfg, which the next deploy's startup configuration uses; a different
    file there is kept beside it as <device>.cfg.~N~."""
    from ..home import list_labs
    from ..lab import Lab

    words = list(names or [])
    lab = words.pop(0) if words and words[0] in list_labs() else None
    chosen = Lab.attach(lab_name(lab, None))
    with progress({n.name: n.host for n in chosen.plan.nodes}, json_out) as view:
        saved = chosen.save_configs(words, output=output, progress=view)
    if json_out:
        print_json([vars(s) for s in saved])
        return
    for item in saved:
        if item.skipped:
            line = f"{item.node}: not saved — {item.skipped}"
        elif not item.changed:
            line = f"{item.node}: {item.path} (unchanged)"
        else:
            line = f"{item.node}: {item.path}" + (
                f" (the earlier file: {item.kept})" if item.kept else ""
            )
        out.print(line, highlight=False)
