"""newtlab's FRR router image: built from the host image's recipe plus Debian's FRR,
reproducibly, with FRR's daemons, vtysh and exactly the libraries they need (libfrr
found through their RUNPATH). Booting it is tests/integration/test_clos.py's work."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from image.build import cache_root
from newtlab.image import BuiltImage, build_image
from newtlab.image.build import FRR_DAEMONS, ROUTER
from newtlab.image.debs import FRR_PACKAGES

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def router() -> BuiltImage:
    root = cache_root()
    return build_image("router", root / "images", root / "downloads", lambda line: None)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _initramfs_names(image: Path, work: Path) -> list[str]:
    raw = work / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True)
    subprocess.run(["mcopy", "-i", str(raw), "::initrd.gz", str(work / "initrd.gz")], check=True)
    listing = subprocess.run(
        ["cpio", "-t", "--quiet"], input=gzip.decompress((work / "initrd.gz").read_bytes()),
        capture_output=True, check=True,
    )  # fmt: skip
    return listing.stdout.decode().split()


def test_the_same_inputs_give_the_same_image(router: BuiltImage, tmp_path: Path) -> None:
    again = build_image("router", tmp_path, cache_root() / "downloads", lambda line: None)
    assert _sha256(again.image) == _sha256(router.image)
    size = router.image.stat().st_size / (1 << 20)
    print(f"\nrouter image: {size:.1f} MiB")


def test_frr_and_its_libraries_are_in_and_its_packages_recorded(
    router: BuiltImage, tmp_path: Path
) -> None:
    names = set(_initramfs_names(router.image, tmp_path))
    for daemon in (*FRR_DAEMONS, "watchfrr"):
        assert f"usr/lib/frr/{daemon}" in names
    assert {"usr/bin/vtysh", "sbin/newtlab-frr", "etc/frr/vtysh.conf"} <= names
    # libfrr through the daemons' RUNPATH; libyang and PCRE2 through libfrr.
    assert "usr/lib/x86_64-linux-gnu/frr/libfrr.so.0" in names
    assert any(n.startswith("usr/lib/x86_64-linux-gnu/libyang.so.2") for n in names)
    # FRR's modules and other daemons stay out: only what the recipe takes.
    assert not any(n.startswith(("usr/lib/frr/isisd", "usr/lib/x86_64-linux-gnu/frr/modules"))
                   for n in names)  # fmt: skip
    meta = json.loads((router.image.parent / f"{ROUTER.name}.json").read_text())
    assert set(FRR_PACKAGES) <= set(meta["packages"])
    assert all(meta["packages"][name] for name in FRR_PACKAGES)  # each at an exact version
