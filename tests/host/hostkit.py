"""What the ``Host`` contract tests share: the implementations, and a lab planned onto one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from newtlab.plan.model import NodePlan, Plan
from newtlab.runtime.host import Host
from newtlab.runtime.local import LocalHost

T = TypeVar("T")
HOSTS: dict[str, Callable[[], Host]] = {"local": LocalHost}


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


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
