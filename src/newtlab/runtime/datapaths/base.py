"""What joins the links: a ``Datapath`` carries a host's share of a lab's links, shapes
them (impairment, cable pulls), captures their frames and counts them.

``NewtlinkDatapath`` (``datapaths.newtlink``) is newtlink, a supervised
userspace bridge per host; a kernel datapath (TAPs joined in the kernel,
VXLAN between servers) would sit behind the same interface. Which datapath a
host gets is chosen in ``runtime.hosts``; ``ops/`` only asks for the
operation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ...plan.model import BridgePlan, LinkSettings
from ..processes import LabProcess

Condition = Literal["up", "restarting", "unsupervised", "down", "unknown"]


@dataclass
class LinksView:
    """A host's datapath for one lab, as seen now.

    ``condition``: ``up``; ``restarting`` (its supervisor is bringing it back);
    ``unsupervised`` (it runs, but nothing would restart it); ``down`` (links are
    cut until repaired); ``unknown`` (its server did not answer). ``stats``: the
    counters document, ``{"pid", "restarts", "started", "links": [{"a", "z",
    "connected", …}]}``, or None if nothing answers.
    """

    condition: Condition = "down"
    processes: list[LabProcess] = field(default_factory=list)
    stats: dict[str, Any] | None = None


class Datapath(Protocol):
    @property
    def name(self) -> str:
        """What joins the links, in a word (``newtlink``)."""
        ...

    async def problems(self) -> list[str]:
        """What the host lacks to carry links this way, one line each."""
        ...

    async def start(
        self, lab: str, bridge: BridgePlan, settings: Mapping[str, LinkSettings]
    ) -> int:
        """Carry the host's share of the lab's links (``bridge``), each link with its
        ``settings`` (by link name) if it has any; the PID that keeps them, if one does."""
        ...

    async def stop(self, lab: str) -> list[str]:
        """Stop carrying the lab's links here; what would not stop, one line each."""
        ...

    async def survey(self, lab: str) -> LinksView:
        """The lab's datapath here now (one round trip)."""
        ...

    async def processes(self, lab: str | None = None) -> list[LabProcess]:
        """Its live processes for ``lab`` (None: for every lab of this home)."""
        ...

    async def shape(self, lab: str, link: str, settings: LinkSettings) -> None:
        """Apply ``settings`` (impairment, cable) to the link whose A end is ``link``;
        kept across the datapath's own restarts."""
        ...

    async def capture(
        self,
        lab: str,
        link: str,
        sink: Callable[[bytes], None],
        count: int = 0,
        duration: float = 0,
    ) -> None:
        """The frames crossing the link whose A end is ``link``, both ways, as a pcap
        stream to ``sink`` in whole records, until ``count`` frames or ``duration`` s."""
        ...
