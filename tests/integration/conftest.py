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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import EXAMPLE, SSH_MUX, SpecDir, close_ssh, kill_leftovers

from image.build import cache_root
from newtlab.errors import NewtlabError
from newtlab.image import BuiltImage, build_host_image, build_image
from newtlab.lab import destroy_lab

# Under pytest-xdist each worker (gw0, gw1, ...) has lab names and port blocks no other
# worker's labs use (a lab's name tags its processes: a finalizer kills by it).
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_BLOCKS = 40  # of 200 ports each, from 24000
_labs_made = itertools.count()


@pytest.fixture(scope="session")
def host_image() -> BuiltImage:
    root = cache_root()
    return build_host_image(root / "images", root / "downloads", lambda line: None)


@pytest.fixture(scope="session")
def router_image(host_image: BuiltImage) -> BuiltImage:
    """newtlab's FRR router image (after the host image: they share a build lock)."""
    root = cache_root()
    return build_image("router", root / "images", root / "downloads", lambda line: None)


@pytest.fixture(scope="session", autouse=True)
def _shared_ssh_connections() -> Iterator[None]:
    """The connections ``labkit.ssh`` keeps end with the run, whatever a test did."""
    yield
    close_ssh()
    with contextlib.suppress(OSError):
        SSH_MUX.rmdir()


def _with_image(home: Path, host_image: BuiltImage) -> Path:
    images = home / "images"
    images.mkdir(exist_ok=True)
    for path in host_image.boot_files:
        (images / path.name).symlink_to(path)
    return home


@contextlib.contextmanager
def _labs(root: Path) -> Iterator[Callable[..., SpecDir]]:
    """Copies of spec dirs under ``root`` (``make_lab``'s); each lab destroyed at exit."""
    created: list[str] = []

    def make(
        source: Path = EXAMPLE,
        name: str | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
        configs: bool = False,
        declared: bool = False,
    ) -> SpecDir:
        made = next(_labs_made)
        lab = name or f"itest{made * _WORKERS + _WORKER}"
        share = max(_BLOCKS // _WORKERS, 1)  # this worker's blocks, reused in turn
        block = _WORKER * share + made % share
        target = root / lab
        shutil.copytree(source, target)
        if not configs:
            shutil.rmtree(target / "configs", ignore_errors=True)
        topo_path = target / "topology.json"
        topology = json.loads(topo_path.read_text())
        base = 24000 + (block % _BLOCKS) * 200
        ports = {"link_port_base": base, "console_port_base": base + 40, "ssh_port_base": base + 70}
        topology.setdefault("newtlab", {}).update(ports)
        if not declared:  # the example's tests (newtlab.validate) name what edits may remove
            topology["newtlab"].pop("validate", None)
        if edit:
            edit(topology)
        topo_path.write_text(json.dumps(topology, indent=2))
        created.append(lab)
        return SpecDir(target, lab, ports)

    yield make
    close_ssh()
    for lab in created:
        with contextlib.suppress(NewtlabError):  # a test may have destroyed it already
            destroy_lab(lab, grace=0)
        left = kill_leftovers(lab)
        assert not left, f"processes of {lab} survived destroy: {left}"


@pytest.fixture
def newtlab_home(_isolated_home: Path, host_image: BuiltImage) -> Path:
    return _with_image(_isolated_home, host_image)


@pytest.fixture
def make_lab(newtlab_home: Path, tmp_path: Path) -> Iterator[Callable[..., SpecDir]]:
    """Copy a spec dir (default: the line3 example) with its own port block; destroy at exit.

    The examples address their routers at boot (``configs/``); a copy leaves those out
    unless ``configs=True``, so a test sets the addresses it needs itself. It leaves out the
    example's declared tests too unless ``declared=True``.
    """
    with _labs(tmp_path) as make:
        yield make


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory, host_image: BuiltImage) -> Iterator[Path]:
    """A NEWTLAB_HOME for the labs a module's tests share (``make_shared_lab``)."""
    home = _with_image(tmp_path_factory.mktemp("newtlab-home"), host_image)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEWTLAB_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def make_shared_lab(
    module_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., SpecDir]]:
    """``make_lab`` for a module-scoped fixture: one lab deployed once, its read-only
    checks in several tests, destroyed after the module's last (tests using it take
    ``in_module_home`` too)."""
    with _labs(tmp_path_factory.mktemp("specs")) as make:
        yield make


@pytest.fixture
def in_module_home(module_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test sees its module's shared labs, not a fresh home of its own."""
    monkeypatch.setenv("NEWTLAB_HOME", str(module_home))
    return module_home
