"""Handing a node its startup configuration: the ISO before it boots, or the console after.

The ISO (config drive or NoCloud seed) is written next to the node's
overlay before QEMU starts; a NoCloud seed also carries the lab's SSH key.
A console push happens once, on deploy: the NOS keeps what it was given
(newtlab's host image starts clean on every boot, which is why its
platform prefers NoCloud, read on every boot).
"""

from __future__ import annotations

from ..iso import build_iso
from ..plan.model import NodePlan, StartupConfigPlan
from ..runtime.console import ConfigPush
from ..runtime.host import Host


def iso_image(config: StartupConfigPlan, pubkey: str) -> bytes:
    """The ISO's bytes: the planned files, plus the lab's key in a NoCloud meta-data."""
    files = dict(config.files)
    if config.method == "nocloud" and pubkey:
        files["meta-data"] += f"public-keys:\n  - {pubkey}\n"
    data = {path: text.encode() for path, text in files.items()}
    return build_iso(data, config.label, config.directories)


async def write_config_iso(host: Host, lab: str, node: NodePlan, pubkey: str) -> None:
    config = node.startup_config
    if config is not None and config.iso:
        await host.write_file(lab, config.iso, iso_image(config, pubkey))


def config_push(config: StartupConfigPlan | None) -> ConfigPush | None:
    """What is typed for a console push: ``before``, each non-blank line, ``after``."""
    if config is None or config.method != "console":
        return None
    lines = [line.rstrip() for line in config.content.splitlines() if line.strip()]
    return ConfigPush([*config.before, *lines, *config.after], config.prompt, config.fail,
                      config.timeout)  # fmt: skip
