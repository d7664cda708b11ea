"""Write small spec directories for tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newtlab.lab import Lab
from newtlab.state import LabState, NodeState, save_state

FIXTURES = Path(__file__).parent / "fixtures" / "specs"
EXAMPLES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())

SWITCH_PLATFORM: dict[str, Any] = {
    "vm_image": "/images/sw.qcow2",
    "vm_interface_map": "sequential",
    "vm_credentials": {"user": "admin", "pass": "pw"},
}
HOST_PLATFORM: dict[str, Any] = {
    "device_type": "host",
    "vm_image": "/images/host.qcow2",
    "vm_interface_map": "linux",
    "vm_credentials": {"user": "root", "pass": "root"},
}


def write_specs(
    root: Path,
    devices: dict[str, Any],
    *,
    links: list[dict[str, str]] | None = None,
    platforms: dict[str, Any] | None = None,
    profiles: dict[str, dict[str, Any]] | None = None,
    newtlab: dict[str, Any] | None = None,
    default_platform: str = "sw",
) -> Path:
    """A spec dir with one profile per device (platform ``sw`` unless given)."""
    root.mkdir(parents=True, exist_ok=True)
    topology: dict[str, Any] = {"version": "1.0", "devices": devices}
    if links is not None:
        topology["links"] = links
    if newtlab is not None:
        topology["newtlab"] = newtlab
    (root / "topology.json").write_text(json.dumps(topology, indent=2))
    plats = platforms or {"sw": SWITCH_PLATFORM, "host": HOST_PLATFORM}
    (root / "platforms.json").write_text(json.dumps({"platforms": plats}, indent=2))
    (root / "profiles").mkdir(exist_ok=True)
    profiles = profiles or {}
    for name in devices:
        profile = profiles.get(name, {"platform": default_platform})
        (root / "profiles" / f"{name}.json").write_text(json.dumps(profile, indent=4))
    return root


def linked(*pairs: tuple[str, str]) -> dict[str, Any]:
    """Devices dict with interface ``link`` fields on both ends of each pair."""
    devices: dict[str, Any] = {}
    for a, z in pairs:
        for here, there in ((a, z), (z, a)):
            device, iface = here.split(":")
            devices.setdefault(device, {"interfaces": {}})["interfaces"][iface] = {"link": there}
    return devices


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``newtlab ARGS`` in a subprocess with this test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "newtlab", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )


def deployed(spec_dir: Path, name: str | None = None, status: str = "") -> LabState:
    """A lab's state as deploy writes it, with no process behind it; ``status``: every
    node's recorded status (none: as deploy first records them)."""
    lab = Lab.load(spec_dir, name=name)
    nodes = {n.name: NodeState(status=status) if status else NodeState() for n in lab.plan.nodes}
    state = LabState(name=lab.name, created=datetime.now(UTC), spec_dir=lab.plan.spec_dir,
                     plan=lab.plan, nodes=nodes)  # fmt: skip
    save_state(state)
    return state
