"""newtlab's host image: cached builds, the KVM probe. (e1000 NICs named in QEMU order:
test_deployed_line3.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from labkit import run_cli

from image.build import cache_root
from newtlab.agent.accel import PROBE_MARKER, choose_accel, probe_argv
from newtlab.image import BuiltImage, build_host_image

pytestmark = pytest.mark.integration


def test_cached_build_is_a_quick_no_op(host_image: BuiltImage) -> None:
    root = cache_root()
    mtime = host_image.image.stat().st_mtime_ns
    started = time.monotonic()
    again = build_host_image(root / "images", root / "downloads", lambda line: None)
    assert time.monotonic() - started < 5
    assert again == host_image and host_image.image.stat().st_mtime_ns == mtime
    assert host_image.image.read_bytes()[:4] == b"QFI\xfb"


def test_cli_builds_into_newtlab_home(newtlab_home: Path) -> None:
    (newtlab_home / "images" / "newtlab-host.qcow2").unlink()  # the fixture's link
    result = run_cli("image", "build", "host", "--json")
    assert result.returncode == 0, result.stderr
    built = {key: Path(path) for key, path in json.loads(result.stdout).items()}
    images = newtlab_home / "images"
    assert built == {
        "image": images / "newtlab-host.qcow2",
        "kernel": images / "newtlab-host.vmlinux",
        "initrd": images / "newtlab-host.initrd.gz",
    }
    assert all(path.is_file() for path in built.values())


def test_kvm_probe_decides_and_is_cached(host_image: BuiltImage, tmp_path: Path) -> None:
    """Whatever this machine's KVM does (missing, hanging, working), the choice, its note
    and the cached verdict agree, and the second choice comes from the cache."""
    cache = tmp_path / "accel.json"
    files = (host_image.kernel, host_image.probe_initrd)
    accel, note = choose_accel("auto", cache, files)
    assert accel in ("kvm", "tcg")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):  # no probe needed to say so
        assert note == "KVM is not available (/dev/kvm missing or not writable): using TCG"
        assert not cache.exists()
    else:
        (verdict,) = json.loads(cache.read_text()).values()  # the product's own decision
        assert verdict["kvm"] == (accel == "kvm")
        assert note == ("" if accel == "kvm" else f"KVM does not work on this host "
                        f"({verdict['why']}): using TCG, which is slower")  # fmt: skip
    started = time.monotonic()
    assert choose_accel("auto", cache, None) == (accel, note)  # from the cache
    assert time.monotonic() - started < 2
    assert choose_accel("tcg", cache, None) == ("tcg", "")
    assert choose_accel("kvm", cache, None) == ("kvm", "")


def test_a_probe_that_cannot_boot_decides_tcg(tmp_path: Path) -> None:
    """A probe guest that never reaches userspace (here: no kernel at all) is a "no"."""
    bogus = tmp_path / "not-a-kernel"
    bogus.write_bytes(b"\0" * 4096)
    accel, note = choose_accel("auto", tmp_path / "accel.json", (bogus, bogus))
    assert accel == "tcg"
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert note.startswith("KVM does not work on this host (QEMU under KVM failed: ")
    else:
        assert note.startswith("KVM is not available")


def test_probe_guest_reaches_userspace_under_tcg(host_image: BuiltImage) -> None:
    argv = probe_argv(host_image.kernel, host_image.probe_initrd, "tcg", "max")
    result = subprocess.run(argv, capture_output=True, timeout=60)
    assert PROBE_MARKER.encode() in result.stdout
