"""Fixtures for tests that boot real QEMU VMs from newtlab's own host image.

The image is built once (cached across runs in ``NEWTLAB_TEST_IMAGE_CACHE``,
default ``~/.cache/newtlab-test``) and linked into each test's NEWTLAB_HOME.
Every lab a test deploys is destroyed in a finalizer, and anything still
tagged with its name is killed, even when the test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from newtlab.errors import NewtlabError
from newtlab.image import BuiltImage, build_host_image
from newtlab.lab import destroy_lab
from newtlab.runtime import bridge, procs

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "line3"
_port_blocks = itertools.count()


def image_cache() -> Path:
    configured = os.environ.get("NEWTLAB_TEST_IMAGE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "newtlab-test"


@pytest.fixture(scope="session")
def host_image() -> BuiltImage:
    cache = image_cache()
    return build_host_image(cache / "images", cache / "downloads", lambda line: None)


@pytest.fixture
def newtlab_home(_isolated_home: Path, host_image: BuiltImage) -> Path:
    images = _isolated_home / "images"
    images.mkdir(exist_ok=True)
    (images / host_image.image.name).symlink_to(host_image.image)
    return _isolated_home


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newtlab", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=timeout,
    )


def kill_leftovers(lab: str) -> list[int]:
    """Kill anything still tagged with ``lab``; the PIDs that were left."""
    left = list(procs.lab_vms(lab)) + procs.find(bridge.tag(lab))
    for pid in left:
        procs.terminate(
            pid, procs.Tag("qemu", lab) if pid in procs.lab_vms(lab) else bridge.tag(lab), 1
        )
    return left


@dataclass
class SpecDir:
    path: Path
    lab: str
    ports: dict[str, int]

    def profiles(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((self.path / "profiles").iterdir())}


@pytest.fixture
def make_lab(newtlab_home: Path, tmp_path: Path) -> Iterator[Callable[..., SpecDir]]:
    """Copy a spec dir (default: the line3 example) with its own port block; destroy at exit."""
    created: list[str] = []

    def make(
        source: Path = EXAMPLE,
        name: str | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> SpecDir:
        block = next(_port_blocks)
        lab = name or f"itest{block}"
        target = tmp_path / lab
        shutil.copytree(source, target)
        topo_path = target / "topology.json"
        topology = json.loads(topo_path.read_text())
        base = 24000 + (block % 40) * 200
        ports = {"link_port_base": base, "console_port_base": base + 40, "ssh_port_base": base + 70}
        topology.setdefault("newtlab", {}).update(ports)
        if edit:
            edit(topology)
        topo_path.write_text(json.dumps(topology, indent=2))
        created.append(lab)
        return SpecDir(target, lab, ports)

    yield make
    for lab in created:
        with contextlib.suppress(NewtlabError):  # a test may have destroyed it already
            destroy_lab(lab, grace=0)
        left = kill_leftovers(lab)
        assert not left, f"processes of {lab} survived destroy: {left}"
