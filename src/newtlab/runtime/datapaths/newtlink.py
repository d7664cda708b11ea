"""``NewtlinkDatapath``: each host's links carried by newtlink, a supervised bridge.

The agent starts ``newtlink --supervise`` in the lab's directory with the
config the plan gives (``plan.bridges.newtlink_config``); the bridge dials its
VMs' NICs and the other servers' bridges, and serves counters and a control
socket (shaping, captures) beside its config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ...agent import layout
from ...errors import RuntimeFailure
from ...plan.bridges import newtlink_config
from ...plan.model import BridgePlan, LinkSettings
from ..processes import LabProcess, from_rows
from ..transports.base import Streams, Transport
from . import newtlink_control
from .base import Condition, LinksView


def condition(processes: list[LabProcess], stats: dict[str, Any] | None) -> Condition:
    """Whether a supervisor runs and the bridge answers, in a word (see ``LinksView``)."""
    supervised = any(p.kind == "supervisor" for p in processes)
    if supervised:
        return "up" if stats is not None else "restarting"
    return "unsupervised" if stats is not None or processes else "down"


class NewtlinkDatapath:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    @property
    def name(self) -> str:
        return "newtlink"

    async def problems(self) -> list[str]:
        return []  # the server's python3, which the transport checks, is all it needs

    async def start(
        self, lab: str, bridge: BridgePlan, settings: Mapping[str, LinkSettings]
    ) -> int:
        config = newtlink_config(lab, bridge, settings)
        return int(await self._transport.call("newtlink_start", lab=lab, config=config))

    async def stop(self, lab: str) -> list[str]:
        return list(await self._transport.call("newtlink_stop", lab=lab))

    async def survey(self, lab: str) -> LinksView:
        found = await self._transport.call("newtlink_survey", lab=lab)
        processes = from_rows(found["processes"])
        return LinksView(condition(processes, found["stats"]), processes, found["stats"])

    async def processes(self, lab: str | None = None) -> list[LabProcess]:
        return from_rows(await self._transport.call("newtlink_processes", lab=lab))

    async def _control(self, lab: str) -> Streams:
        try:
            return await self._transport.open_unix(lab, layout.BRIDGE_CONTROL)
        except OSError as exc:
            raise RuntimeFailure(
                f"{self._transport.name}: lab {lab}'s bridge does not answer on its control "
                f"socket ({exc}) — `newtlab repair {lab}` starts it again"
            ) from None

    async def shape(self, lab: str, link: str, settings: LinkSettings) -> None:
        request = {"op": "set", "link": link, "settings": settings.bridge()}
        await newtlink_control.ask(await self._control(lab), request)

    async def capture(
        self,
        lab: str,
        link: str,
        sink: Callable[[bytes], None],
        count: int = 0,
        duration: float = 0,
    ) -> None:
        request = {"op": "capture", "link": link, "count": count, "duration": duration}
        await newtlink_control.capture(await self._control(lab), request, sink)
