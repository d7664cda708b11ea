"""``newtlink CONFIG [--lab NAME]``: run a link bridge until SIGTERM.

Prints ``READY <pid>`` once every listener is open; exits 2 (with one line
on stderr naming the port and its purpose) if any cannot be opened.
"""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load
from .server import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="newtlink", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("config", help="bridge config JSON")
    parser.add_argument("--lab", default="", help="lab name (identifies the process)")
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"newtlink: bad config: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(config))


if __name__ == "__main__":
    main()
