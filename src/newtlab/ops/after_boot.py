"""What runs on a node once it is ready: its virtual hosts, boot patches, post-boot commands.

All of it runs again on every start of the node, so patches and commands
must be safe to repeat. The first failure stops the node, naming the patch
file, the step and the command, with its output. A patch written for named
SONiC releases is checked against the image before any patch runs, so an
image it does not know is left as it booted.
"""

from __future__ import annotations

import time

from ..plan.model import NodePlan, PatchPlan
from ..plan.patches import PatchStep, patch_steps, release_check
from ..plan.vhost_script import as_root, setup_script
from ..runtime import ssh
from .events import Event, Progress


async def run_after_boot(
    target: ssh.SSHTarget, node: NodePlan, pubkey: str, deadline: float, progress: Progress
) -> None:
    """All of it over one SSH connection, in that order."""
    if not (node.vhosts or node.patches or node.post_boot):
        return
    async with ssh.Session.open(target, f"{node.name}: after boot") as session:
        if node.vhosts:
            progress(Event(node.name, "hosts", f"making {len(node.vhosts)} virtual hosts"))
            script = setup_script(node.vhosts, node.ssh_user, pubkey)
            await session.check(
                as_root("sh -s"), "making its virtual hosts", _left(deadline, 30), script
            )
        for patch in node.patches:
            if check := release_check(patch):
                await _patch_step(session, patch, check, deadline)
        for patch in node.patches:
            progress(Event(node.name, "patching", patch.name))
            for step in patch_steps(patch):
                await _patch_step(session, patch, step, deadline)
        for command in node.post_boot:
            progress(Event(node.name, "post-boot", command))
            await session.check(command, f"post-boot command `{command}`", _left(deadline))


async def _patch_step(
    session: ssh.Session, patch: PatchPlan, step: PatchStep, deadline: float
) -> None:
    what = f"boot patch {patch.source}, {step.kind} `{step.shown}`"
    await session.check(step.command, what, _left(deadline), step.stdin)


def _left(deadline: float, floor: float = 60) -> float:
    """Time for one step: what the boot timeout leaves, but never under ``floor`` seconds."""
    return max(deadline - time.monotonic(), floor)
