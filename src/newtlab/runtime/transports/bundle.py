"""The code a server runs, as files: the host agent and newtlink (standard library only).

A server gets them under ``NEWTLAB_HOME/runtime/<digest>/`` — keyed by their
content, so each version is copied once and never changed in place — and
runs ``python3 -m newtlab_agent OP`` there with that directory on
``PYTHONPATH``. Nothing needs installing on the server.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

AGENT = "newtlab_agent"
NEWTLINK = "newtlink"
_SOURCES = {AGENT: "agent", NEWTLINK: "newtlink"}  # shipped name → package of newtlab


@cache
def files() -> dict[str, bytes]:
    """Relative path → content of every file to ship, in a stable order."""
    shipped = {}
    for name, package in _SOURCES.items():
        root = resources.files("newtlab").joinpath(package)
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".py"):
                shipped[f"{name}/{entry.name}"] = entry.read_bytes()
    return shipped


@cache
def digest() -> str:
    """A short content hash of the bundle: the directory name it is shipped under."""
    sha = hashlib.sha256()
    for path, content in files().items():
        sha.update(path.encode() + b"\0" + content + b"\0")
    return sha.hexdigest()[:16]
