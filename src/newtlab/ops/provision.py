"""Provision: run newtron (or a configured command) against each deployed device."""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass

from ..errors import RuntimeFailure
from ..runtime.host import Host
from ..state import LabState
from .events import Event, Progress


@dataclass(frozen=True)
class ProvisionResult:
    device: str
    returncode: int
    output: str


def provision_targets(state: LabState, devices: list[str] | None) -> list[str]:
    """Devices to provision: those asked for, else every non-host device."""
    known = {n.name: n for n in state.plan.nodes if not n.hosts}
    if devices:
        unknown = [d for d in devices if d not in known]
        if unknown:
            raise RuntimeFailure(
                f"not a device of lab {state.name}: {', '.join(unknown)} "
                f"(devices: {', '.join(sorted(known))})"
            )
        return devices
    return sorted(n for n, node in known.items() if node.device_type != "host")


async def provision(
    state: LabState,
    runner: Host,
    devices: list[str],
    command: str,
    parallel: int,
    progress: Progress,
) -> list[ProvisionResult]:
    """Run ``command`` per device on ``runner`` (this machine), ``parallel`` at a time.

    Every failure is collected.
    """
    semaphore = asyncio.Semaphore(max(parallel, 1))

    async def one(device: str) -> ProvisionResult:
        argv = [
            part.format(spec_dir=state.spec_dir, device=device, lab=state.name)
            for part in shlex.split(command)
        ]
        async with semaphore:
            progress(Event(device, "provisioning", " ".join(argv)))
            ran = await runner.run(argv)
            result = ProvisionResult(device, ran.returncode, ran.output)
        failed = result.returncode != 0
        progress(Event(device, "error" if failed else "provisioned", failed=failed))
        return result

    return list(await asyncio.gather(*(one(d) for d in devices)))
