"""Build (or reuse) the guest image the integration tests boot.

Usage: python tests/image/build.py [--dest DIR]

The image is newtlab's own host image (``newtlab image build host``), kept in
``NEWTLAB_TEST_IMAGE_CACHE`` (default ``~/.cache/newtlab-test``) so test runs
share it; a no-op when nothing it is built from has changed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from newtlab.image import build_host_image


def cache_root() -> Path:
    configured = os.environ.get("NEWTLAB_TEST_IMAGE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "newtlab-test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=None, help="image directory")
    args = parser.parse_args()
    root = cache_root()
    built = build_host_image(args.dest or root / "images", root / "downloads", print)
    print(built.image)


if __name__ == "__main__":
    main()
