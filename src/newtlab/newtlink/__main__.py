"""``newtlink CONFIG [--lab NAME] [--supervise]``: relay a lab's links until SIGTERM.

Prints ``READY <pid>`` on stdout once every listener is open. Exits 2, with
one line on stderr, if the config is unusable or a listener cannot be opened
(nothing is left running); exits 0 after SIGTERM or SIGINT. With
``--supervise`` the bridge runs as the child of a supervisor that restarts it
whenever it dies; the supervisor's PID is the one on the READY line.
"""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load
from .server import EXIT_FAILED, run
from .supervise import supervise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="newtlink",
        description="Relay QEMU socket-netdev links between lab VMs, frame-aligned.",
    )
    parser.add_argument("config", help="bridge config (JSON)")
    parser.add_argument(
        "--lab", default=None, help="lab name; names the process in ps (default: config 'lab')"
    )
    parser.add_argument(
        "--supervise", action="store_true", help="run under a supervisor that restarts it"
    )
    parser.add_argument("--restarts", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"newtlink: bad config: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILED)
    lab = args.lab if args.lab is not None else config.lab
    if args.supervise:
        sys.exit(supervise(args.config, lab))
    sys.exit(run(config, lab, args.restarts))


if __name__ == "__main__":
    main()
