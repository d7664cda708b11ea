"""How to start newtlink as a process that runs this very code, wherever it lives.

Installed with newtlab it is ``newtlab.newtlink``; shipped to a
server on its own it is ``newtlink``. Either way the new process gets this
package's name for ``-m`` and its root on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = __package__ or "newtlink"


def command(*args: str) -> list[str]:
    """``python -m <this package> ARGS`` with the running interpreter."""
    return [sys.executable, "-m", PACKAGE, *args]


def environment() -> dict[str, str]:
    """This process's environment with the package's root first on ``PYTHONPATH``."""
    root = Path(__file__).resolve().parent
    for _ in PACKAGE.split(".")[1:]:
        root = root.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root.parent), env.get("PYTHONPATH")) if p)
    return env
