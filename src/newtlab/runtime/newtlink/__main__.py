"""``newtlink CONFIG [--lab NAME]``: relay a lab's links until SIGTERM.

Prints ``READY <pid>`` on stdout once every listener is open. Exits 2, with
one line on stderr, if the config is unusable or a listener cannot be opened
(nothing is left running); exits 0 after SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load
from .server import EXIT_FAILED, run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="newtlink",
        description="Relay QEMU socket-netdev links between lab VMs, frame-aligned.",
    )
    parser.add_argument("config", help="bridge config (JSON)")
    parser.add_argument(
        "--lab", default=None, help="lab name; names the process in ps (default: config 'lab')"
    )
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"newtlink: bad config: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILED)
    sys.exit(run(config, args.lab if args.lab is not None else config.lab))


if __name__ == "__main__":
    main()
