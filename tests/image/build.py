"""Build (or reuse) newtlab's host image and print its path (progress goes to stderr).

Usage: python tests/image/build.py [--dest DIR] [--cache DIR] [--for-tests]

By default the image goes where ``newtlab image build host`` puts it,
``$NEWTLAB_HOME/images`` (``NEWTLAB_HOME`` defaults to ``~/.newtlab``), with
downloads in ``$NEWTLAB_HOME/cache``. ``--for-tests`` builds the copy the
integration tests boot instead: ``NEWTLAB_TEST_IMAGE_CACHE`` (default
``~/.cache/newtlab-test``), ``images/`` and ``downloads/`` in it. A no-op
taking well under a second while nothing the image is built from has changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from newtlab.image import ImageBuildError, build_host_image


def cache_root() -> Path:
    """Where the integration tests keep their image (``images/``, ``downloads/``)."""
    configured = os.environ.get("NEWTLAB_TEST_IMAGE_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "newtlab-test"


def _newtlab_home() -> Path:
    configured = os.environ.get("NEWTLAB_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".newtlab"


def _progress(line: str) -> None:
    print(line, file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dest", type=Path, help="image directory")
    parser.add_argument("--cache", type=Path, help="download cache directory")
    parser.add_argument("--for-tests", action="store_true", help="build the tests' copy")
    args = parser.parse_args()
    if args.for_tests:
        dest, cache = cache_root() / "images", cache_root() / "downloads"
    else:
        dest, cache = _newtlab_home() / "images", _newtlab_home() / "cache"
    try:
        built = build_host_image(args.dest or dest, args.cache or cache, _progress)
    except ImageBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(built.image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
