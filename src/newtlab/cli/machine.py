"""newtlab and its machine: version, the platform catalog, doctor, prune, images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .. import __version__
from ..errors import NewtlabError, RuntimeFailure, UsageError
from ..suggest import did_you_mean
from .common import JsonOpt, NameOpt, SpecsOpt, err, out, print_json


def version() -> None:
    """Print newtlab's version."""
    out.print(f"newtlab {__version__}")


def platforms(
    name: Annotated[str | None, typer.Argument(help="one entry, in full")] = None,
    json_out: JsonOpt = False,
) -> None:
    """newtlab's platform catalog: what a platforms.json entry's "base" may name."""
    from ..render import catalog_table
    from ..spec.catalog import catalog

    entries = catalog()
    if name is None:
        if json_out:
            print_json(entries)
        else:
            out.print(catalog_table(entries))
        return
    if name not in entries:
        raise UsageError(
            f"no platform {name!r} in the catalog{did_you_mean(name, entries)} (it has: "
            f"{', '.join(entries)})"
        )
    if json_out:
        print_json(entries[name])
    else:
        out.print_json(json.dumps(entries[name]))


def doctor(specs: SpecsOpt = None, name: NameOpt = None, json_out: JsonOpt = False) -> None:
    """Check that this machine (and with -S, the lab's ports and servers) can run labs."""
    from ..lab import Lab
    from ..render import checks_table

    lab = Lab.load(specs, name=name) if specs is not None else None
    checks = lab.doctor() if lab is not None else Lab.doctor_machine()
    if json_out:
        print_json([c.as_dict() for c in checks])
    else:
        out.print(checks_table(checks))
    if any(c.level == "FAIL" for c in checks):
        raise typer.Exit(1)


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
    from ..lab import prune as find_and_prune
    from ..render import pruned_table

    pruned = find_and_prune(specs, remove=yes)
    if json_out:
        print_json(pruned.as_dict())
        return
    for server, why in pruned.caches.unreachable.items():
        err.print(f"server {server} did not answer, its caches were not looked at: {why}",
                  highlight=False, markup=False, soft_wrap=True)  # fmt: skip
    table = pruned_table(pruned)
    if table is None:
        out.print("nothing to prune")
        return
    out.print(table)
    out.print("removed" if yes else "`newtlab prune --yes` removes them")


image_app = typer.Typer(
    help="Build the images newtlab provides.", no_args_is_help=True, rich_markup_mode=None
)


@image_app.command("build")
def image_build(
    kind: Annotated[str, typer.Argument(help="image to build: host or router")],
    name: Annotated[
        str | None,
        typer.Option(
            help="also make it available under this file name (e.g. alpine-testhost.qcow2)"
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Build one of newtlab's images into NEWTLAB_HOME/images: the small Linux host image
    (host) or, on top of it, the FRR router image (router)."""
    from ..home import cache_dir, images_dir
    from ..image import IMAGE_KINDS, ImageBuildError, build_image

    if kind not in IMAGE_KINDS:
        raise NewtlabError(
            f"unknown image {kind!r}: newtlab builds "
            f"{' and '.join(repr(k) for k in IMAGE_KINDS)}{did_you_mean(kind, IMAGE_KINDS)}"
        )
    try:
        built = build_image(
            kind, images_dir(), cache_dir(), lambda line: err.print(line, highlight=False), name
        )
    except ImageBuildError as exc:
        raise RuntimeFailure(str(exc)) from None
    if json_out:
        print_json({"image": str(built.image), "kernel": str(built.vmlinux),
                    "initrd": str(built.initrd)})  # fmt: skip
    else:
        out.print(f"built {built.image}, with its kernel and initramfs beside it")
