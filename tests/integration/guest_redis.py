"""Debian's redis-server for a test guest: fetched over the guest's management NIC.

newtlab's host image has no redis; tests that need one (a boot patch's
``redis`` step) pack Debian 12's ``redis-tools`` (its ``redis-check-rdb`` is
the server, ``redis-server`` a link to it, as in Debian's ``redis-server``
package) with the libraries the image lacks, and serve the archive on
loopback. QEMU's user network shows the host's loopback to a guest as
10.0.2.2, so a guest fetches it with busybox ``wget`` and unpacks it at ``/``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from image.build import cache_root
from newtlab.image import debs

# redis-tools and what its binaries need beyond the host image's own libraries
PACKAGES = ("redis-tools", "libjemalloc2", "liblzf1", "libatomic1", "libssl3", "libstdc++6",
            "libgcc-s1")  # fmt: skip
LIB_DIRS = ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu")
GUEST_HOST = "10.0.2.2"  # the host's loopback, seen from a guest's user-mode NIC


def redis_archive(dest: Path) -> Path:
    """``dest/redis.tgz``: redis-server, redis-cli and their missing libraries."""
    archive = dest / "redis.tgz"
    packages = debs.candidates(PACKAGES)
    files = debs.download(packages, cache_root() / "downloads" / "debs", lambda _: None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        debs.unpack(files, root)
        with tarfile.open(archive, "w:gz") as tar:
            for binary in ("usr/bin/redis-check-rdb", "usr/bin/redis-cli"):
                tar.add(root / binary, binary)
            server = tarfile.TarInfo("usr/bin/redis-server")
            server.type, server.linkname = tarfile.SYMTYPE, "redis-check-rdb"
            tar.addfile(server)
            for directory in LIB_DIRS:
                for library in sorted((root / directory).iterdir()):
                    tar.add(library, f"{directory}/{library.name}")
    return archive


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[int]:
    """Serve ``directory`` over HTTP on 127.0.0.1; the port."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
