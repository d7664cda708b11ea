"""A lab's links: impairment, cable pulls, what is set, and captures."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, BinaryIO, Literal

import typer

from ..errors import NewtlabError, UsageError
from .common import JsonOpt, LabOpt, OnlyLabArg, err, lab_name, lab_of_node, out, print_json

if TYPE_CHECKING:
    from ..lab import Lab
    from ..plan.model import LinkSettings

link_app = typer.Typer(
    help="Shape a deployed lab's links: impairment and cable pulls.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
EndArg = Annotated[str, typer.Argument(metavar="NODE:IFACE", help="either end of the link")]


def _lab_of_end(end: str, lab: str | None) -> Lab:
    node, sep, iface = end.partition(":")
    if not sep or not node or not iface:
        raise NewtlabError(f"{end!r}: name a link by one of its ends, NODE:IFACE")
    return lab_of_node(node, lab)


def _print_settings(end: str, settings: LinkSettings, json_out: bool) -> None:
    if json_out:
        print_json({"end": end, **settings.model_dump()})
        return
    from ..render import link_settings_line

    out.print(link_settings_line(end, settings), highlight=False)


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
def link_show(lab: OnlyLabArg = None, json_out: JsonOpt = False) -> None:
    """Every link of a lab: cable in or pulled, and each direction's impairment."""
    from ..lab import Lab
    from ..render import link_settings_table

    settings = Lab.attach(lab_name(lab, None)).link_settings()
    if json_out:
        print_json({name: s.model_dump() for name, s in settings.items()})
        return
    out.print(link_settings_table(settings))


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
    from ..ops.links import PcapSink

    target = write if write is not None else ("-" if not sys.stdout.isatty() else None)
    if target is None:
        raise UsageError("give -w FILE, or -w - and pipe it (e.g. into tcpdump -r -)")
    chosen = _lab_of_end(end, lab)
    opened: list[BinaryIO] = []

    def write_out(data: bytes) -> None:
        if not opened:  # the bridge took the request: only now a file, and the word
            err.print(f"capturing {end} into {target} — Ctrl-C stops", highlight=False)
            # stdout for -, else the file (closed below, also on Ctrl-C)
            opened.append(sys.stdout.buffer if target == "-" else open(target, "wb"))  # noqa: SIM115
        opened[0].write(data)
        opened[0].flush()  # a reader following it sees frames as they pass

    sink = PcapSink(write_out)
    try:
        chosen.capture(end, sink, count=count, duration=duration)
    except (KeyboardInterrupt, BrokenPipeError):
        pass  # Ctrl-C, or the reader (tcpdump -c N, head) had enough: what was written is whole
    finally:
        if opened and target != "-":
            opened[0].close()
    if opened:
        frames = "1 frame" if sink.frames == 1 else f"{sink.frames} frames"
        err.print(f"captured {frames} into {target}", highlight=False)
