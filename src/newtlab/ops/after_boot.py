"""What runs on a node once it answers SSH: its boot patches, then its post-boot commands.

All of it runs again on every start of the node, so patches and commands
must be safe to repeat. The first failure stops the node, naming the patch
file, the step and the command, with its output.
"""

from __future__ import annotations

import time

from ..plan.model import NodePlan
from ..plan.patches import patch_steps
from ..runtime import ssh
from .events import Event, Progress


async def run_after_boot(
    target: ssh.SSHTarget, node: NodePlan, deadline: float, progress: Progress
) -> None:
    async with ssh.Session.open(target, f"{node.name}: boot patches") as session:
        for patch in node.patches:
            progress(Event(node.name, "patching", patch.name))
            for step in patch_steps(patch):
                what = f"boot patch {patch.source}, {step.kind} `{step.shown}`"
                await session.check(step.command, what, _left(deadline), step.stdin)
        for command in node.post_boot:
            progress(Event(node.name, "post-boot", command))
            await session.check(command, f"post-boot command `{command}`", _left(deadline))


def _left(deadline: float) -> float:
    """Time for one step: what the boot timeout leaves, but never under a minute."""
    return max(deadline - time.monotonic(), 60)
