"""Debian's redis-server and python3 for a test guest: fetched over its management NIC.

newtlab's host image has neither; tests that need them (a boot patch's
``redis`` step, a patch that runs Python) pack Debian 12's packages with the
libraries the image lacks, and serve the archives on loopback. QEMU's user
network shows the host's loopback to a guest as 10.0.2.2, so a guest fetches
one with busybox ``wget`` and unpacks it at ``/``; or a platform boots with the
archives' files as a second initramfs (``initrd_with``) and has them at once.

redis: ``redis-tools`` (its ``redis-check-rdb`` is the server, ``redis-server``
a link to it, as in Debian's ``redis-server`` package). python3: Python 3.11
as Debian's ``python3.11-minimal`` and ``libpython3.11-stdlib`` install it.
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import gzip
import http.server
import py_compile
import re
import stat
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from image.build import cache_root
from newtlab.image import debs
from newtlab.image.cpio import Entry, archive

# redis-tools and what its binaries need beyond the host image's own libraries
PACKAGES = ("redis-tools", "libjemalloc2", "liblzf1", "libatomic1", "libssl3", "libstdc++6",
            "libgcc-s1")  # fmt: skip
LIB_DIRS = ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu")
# Python's own packages, whole, and the libraries its interpreter links beyond the image's
PYTHON = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib")
PYTHON_LIBS = ("libexpat1", "zlib1g")
# Left out: a third of the library, which nothing a test guest runs imports
UNUSED = {"pydoc_data", "test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip",
          "unittest", "asyncio", "email", "xml", "multiprocessing", "distutils", "venv", "curses",
          "dbm", "sqlite3", "wsgiref", "xmlrpc", "http", "urllib", "html", "turtle.py", "pydoc.py",
          "_pydecimal.py", "config-3.11-x86_64-linux-gnu"}  # fmt: skip
GUEST_HOST = "10.0.2.2"  # the host's loopback, seen from a guest's user-mode NIC


def _quiet(line: str) -> None:
    pass


def _unpacked(names: tuple[str, ...], into: Path) -> None:
    files = debs.download(debs.candidates(names), cache_root() / "downloads" / "debs", _quiet)
    debs.unpack(files, into)


def _link(tar: tarfile.TarFile, name: str, target: str) -> None:
    link = tarfile.TarInfo(name)
    link.type, link.linkname = tarfile.SYMTYPE, target
    tar.addfile(link)


def _add_libraries(tar: tarfile.TarFile, root: Path) -> None:
    for directory in LIB_DIRS:
        if (root / directory).is_dir():
            for library in sorted((root / directory).iterdir()):
                tar.add(library, f"{directory}/{library.name}")


def redis_archive(dest: Path) -> Path:
    """``dest/redis.tgz``: redis-server, redis-cli and their missing libraries."""
    archive = dest / "redis.tgz"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _unpacked(PACKAGES, root)
        with tarfile.open(archive, "w:gz") as tar:
            for binary in ("usr/bin/redis-check-rdb", "usr/bin/redis-cli"):
                tar.add(root / binary, binary)
            _link(tar, "usr/bin/redis-server", "redis-check-rdb")
            _add_libraries(tar, root)
    return archive


def _compile(library: Path) -> None:
    """Byte-code for the standard library the archive ships, as Debian's postinst would
    make it: without, each boot's first Python runs in the guest compile what they
    import, under TCG most of their time. Unchecked hashes: valid whatever the files'
    times. Made only by a Python 3.11, whose byte-code the guest's 3.11 reads."""
    if sys.version_info[:2] != (3, 11):
        return
    left_out = re.compile("/(" + "|".join(map(re.escape, sorted(UNUSED))) + ")(/|$)")
    unchecked = py_compile.PycInvalidationMode.UNCHECKED_HASH
    compileall.compile_dir(library, ddir="/usr/lib/python3.11", rx=left_out, quiet=2,
                           invalidation_mode=unchecked)  # fmt: skip


def python_archive(dest: Path) -> Path:
    """``dest/python.tgz``: python3 (3.11) with its standard library (no docs), compiled."""
    archive = dest / "python.tgz"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _unpacked(PYTHON + PYTHON_LIBS, root)
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(root / "usr/bin/python3.11", "usr/bin/python3.11")
            _link(tar, "usr/bin/python3", "python3.11")
            library = root / "usr/lib/python3.11"
            _compile(library)
            for path in sorted(library.iterdir()):
                if path.name not in UNUSED:
                    tar.add(path, f"usr/lib/python3.11/{path.name}")
            _add_libraries(tar, root)
    return archive


def initrd_with(base: Path, archives: list[Path], dest: Path) -> Path:
    """``dest``: the image's initramfs ``base``, then a second one of the archives' files.
    The kernel unpacks both at boot (as it does an early microcode archive before
    Debian's initrd): the guest has the files without fetching and unpacking them itself,
    which under TCG cost each boot seconds of CPU."""
    entries: dict[str, Entry] = {}
    for path in archives:
        with tarfile.open(path) as tar:
            for member in tar:
                name = member.name.removeprefix("./").rstrip("/")
                parts = name.split("/")
                for i in range(1, len(parts)):  # the kernel makes no missing parent
                    parent = "/".join(parts[:i])
                    entries.setdefault(parent, Entry(parent, stat.S_IFDIR | 0o755))
                if member.isdir():
                    entries[name] = Entry(name, stat.S_IFDIR | member.mode)
                elif member.issym():
                    entries[name] = Entry(name, stat.S_IFLNK | 0o777, member.linkname.encode())
                elif member.isfile():
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    entries[name] = Entry(name, stat.S_IFREG | member.mode, data)
    extra = gzip.compress(archive(list(entries.values())), compresslevel=1, mtime=0)
    dest.write_bytes(base.read_bytes() + extra)
    return dest


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
