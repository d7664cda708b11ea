"""What the ``Host`` contract tests share: one event loop, the implementations, a lab.

A remote host's SSH connection belongs to the event loop it was opened on,
so every coroutine of these tests runs on one loop, in a background thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from newtlab.plan.model import NodePlan, Plan
from newtlab.runtime.host import Host

T = TypeVar("T")
_loop = asyncio.new_event_loop()
threading.Thread(target=_loop.run_forever, name="host-tests", daemon=True).start()


def run(coroutine: Coroutine[Any, Any, T], timeout: float = 120) -> T:
    """Run ``coroutine`` on the tests' event loop; its result."""
    return asyncio.run_coroutine_threadsafe(coroutine, _loop).result(timeout)


@dataclass
class HostLab:
    """A two-node, one-link lab planned onto ``host`` (nothing started yet)."""

    host: Host
    plan: Plan
    base: str  # the base image, made on the host

    @property
    def name(self) -> str:
        return self.plan.lab

    def node(self, name: str) -> NodePlan:
        return self.plan.node(name)
