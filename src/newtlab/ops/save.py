"""``newtlab save``: each node's running configuration, read as its platform says
(``vm_save``), into ``configs/<device>.cfg``, where the next deploy's startup
configuration picks it up.

A file already there that differs is kept beside it as ``<device>.cfg.~N~``
(numbered as GNU ``cp --backup=numbered`` does, never overwritten): saving is
done again and again, and a refusal that asks for ``--force`` each time would
teach users the flag that loses their hand-written template.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from ..agent.fsutil import atomic_write
from ..errors import RuntimeFailure
from ..plan.model import NodePlan
from ..runtime import ssh
from ..runtime.hosts import Hosts
from ..state import LabState
from .events import Event, Progress
from .node import require_running

TIMEOUT = 120.0  # SONiC's `config save` on a busy TCG guest


@dataclass(frozen=True)
class SavedConfig:
    """What ``save`` did for one node: the file written (``path``, '' if none), the
    earlier file kept beside it (``kept``), or why nothing was saved (``skipped``)."""

    node: str
    path: str = ""
    kept: str = ""
    changed: bool = False
    skipped: str = ""


def write_config(directory: Path, device: str, text: str) -> SavedConfig:
    """``text`` as ``directory/<device>.cfg``; a different file there is renamed
    ``<device>.cfg.~N~`` first (the lowest N free); the same text leaves it untouched."""
    path = directory / f"{device}.cfg"
    text = text if text.endswith("\n") else text + "\n"
    kept = ""
    if path.exists():
        if path.read_text(errors="replace") == text:
            return SavedConfig(device, str(path))
        number = 1
        while path.with_name(f"{path.name}.~{number}~").exists():
            number += 1
        backup = path.with_name(f"{path.name}.~{number}~")
        path.rename(backup)
        kept = str(backup)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode(), 0o644)
    return SavedConfig(device, str(path), kept, changed=True)


async def read_config(state: LabState, hosts: Hosts, node: NodePlan) -> str:
    """The node's running configuration, as its platform's ``vm_save`` reads it."""
    assert node.save is not None
    target = await require_running(state, hosts, node.name)
    steps = [node.save.command] if node.save.command else []
    if node.save.file:
        steps.append(f"cat {shlex.quote(node.save.file)}")
    async with hosts[node.host].reach(node.ssh_port, node.ssh_bind) as (address, port):
        login = target.login(address, port, state.ssh_key_path)
        output = ""
        for step in steps:
            try:
                done = await ssh.run(login, step, timeout=TIMEOUT)
            except (TimeoutError, OSError, asyncssh.Error) as exc:
                raise RuntimeFailure(f"{node.name}: `{step}` did not run: {exc!r}") from None
            if done.exit_status != 0:
                said = str(done.stderr or done.stdout or "").strip()[-300:]
                raise RuntimeFailure(
                    f"{node.name}: `{step}` exited {done.exit_status}"
                    + (f": {said}" if said else "")
                )
            output = str(done.stdout or "")
    if not output.strip():
        raise RuntimeFailure(f"{node.name}: vm_save gave nothing (`{'; '.join(steps)}`)")
    return output


async def save_configs(
    state: LabState, hosts: Hosts, nodes: list[str], directory: Path, progress: Progress
) -> list[SavedConfig]:
    """Each of ``nodes`` (every VM if empty) read at once and written into ``directory``;
    a node whose platform has no ``vm_save`` is skipped, saying so. Fails, naming each
    node that could not be read, before anything is written."""
    chosen = [state.plan.node(n) for n in nodes] if nodes else state.plan.nodes
    readable = [n for n in chosen if n.save is not None]
    results = await asyncio.gather(
        *(read_config(state, hosts, n) for n in readable), return_exceptions=True
    )
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    if failures:
        raise RuntimeFailure("\n".join(["nothing was saved:", *failures]))
    texts = {n.name: str(text) for n, text in zip(readable, results, strict=True)}
    saved = []
    for node in chosen:
        if node.name not in texts:
            why = f"platform {node.platform} has no vm_save"
            saved.append(SavedConfig(node.name, skipped=why))
            progress(Event(node.name, "skipped", why))
            continue
        done = write_config(directory, node.name, texts[node.name])
        saved.append(done)
        progress(Event(node.name, "saved", done.path if done.changed else "unchanged"))
    return saved
