"""A lab's links on a host: starting its datapath, and starting it again if it died."""

from __future__ import annotations

from ..errors import RuntimeFailure
from ..runtime.hosts import Hosts
from ..state import BridgeState, LabState, save_state
from .events import Event, Progress
from .status import HostView


async def start_bridge(state: LabState, hosts: Hosts, host: str, progress: Progress) -> None:
    """Start the bridge of ``host`` and record its supervisor's PID."""
    bridge = state.plan.bridges[host]
    datapath = hosts[host].datapath
    progress(Event("", "bridge", f"{datapath.name} on {host}: {len(bridge.links)} links"))
    pid = await datapath.start(state.name, bridge, state.links)
    state.bridges[host] = BridgeState(pid=pid, host=host)
    save_state(state)


async def ensure_bridge(
    state: LabState, hosts: Hosts, host: str, view: HostView, progress: Progress
) -> str | None:
    """Start ``host``'s bridge again unless it is up; what was done, if anything."""
    condition = view.condition
    if condition == "up":
        return None
    if condition == "restarting":
        return f"bridge on {host}: its supervisor is restarting it (see logs/newtlink.log)"
    problems = await hosts[host].datapath.stop(state.name)  # an unsupervised one goes first
    if problems:
        raise RuntimeFailure(f"bridge on {host}: " + "; ".join(problems))
    await start_bridge(state, hosts, host, progress)
    supervisor = state.bridges[host].pid
    return f"bridge on {host} was {condition}: started again (supervisor pid {supervisor})"
