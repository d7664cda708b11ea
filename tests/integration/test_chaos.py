"""Chaos: deploys killed at each phase boundary, a corrupt state, two deploys at once, a full disk.

Whatever happens, `newtlab destroy` (or the failed command itself) leaves
no process, no lab file and every profile as it was.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import SpecDir, run_cli, two_routers, wait_for

import labprocs
from newtlab.agent import procs
from newtlab.ops.deploy import PAUSE_ENV

pytestmark = pytest.mark.integration


def _deploy(spec: SpecDir, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "newtlab", "deploy", "-S", str(spec.path), "--accel", "tcg"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})  # fmt: skip


def _assert_clean(spec: SpecDir, home: Path, profiles: dict[str, bytes]) -> None:
    assert labprocs.vms(spec.lab) == {}
    assert procs.find(procs.bridge_tag(spec.lab)) == []
    assert not (home / "labs" / spec.lab).exists()
    assert spec.profiles() == profiles


@pytest.mark.parametrize("phase", ["state", "disks", "booted", "profiles"])
def test_a_deploy_killed_at_a_phase_boundary_is_fully_destroyable(  # type: ignore[no-untyped-def]
    make_lab, newtlab_home: Path, phase: str
) -> None:
    spec: SpecDir = make_lab(edit=two_routers)  # two VMs and a link: a bridge to clean up
    profiles = spec.profiles()
    deploy = _deploy(spec, {PAUSE_ENV: phase})
    marker = newtlab_home / "labs" / spec.lab / f"paused-{phase}"
    try:
        wait_for(lambda: marker.exists() or deploy.poll() is not None, timeout=180)
        assert marker.exists(), deploy.stderr.read() if deploy.stderr else ""
    finally:
        deploy.send_signal(signal.SIGKILL)
        deploy.wait()
    result = run_cli("destroy", spec.lab, "--grace", "0")
    assert result.returncode == 0, result.stderr
    _assert_clean(spec, newtlab_home, profiles)


def test_a_corrupt_state_is_said_and_destroy_still_removes_everything(  # type: ignore[no-untyped-def]
    make_lab, newtlab_home: Path
) -> None:
    spec: SpecDir = make_lab(edit=two_routers)
    profiles = spec.profiles()
    assert run_cli("deploy", "-S", str(spec.path), "--accel", "tcg").returncode == 0
    assert spec.profiles() != profiles  # deploy wrote its fields
    (newtlab_home / "labs" / spec.lab / "state.json").write_text('{"name": "half a file')
    status = run_cli("status", spec.lab)
    assert status.returncode != 0 and "state.json is unreadable" in status.stderr
    result = run_cli("destroy", spec.lab, "--grace", "0")
    assert result.returncode == 0, result.stderr
    _assert_clean(spec, newtlab_home, profiles)


def test_two_deploys_of_one_lab_at_once(make_lab, newtlab_home: Path) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab()
    first = _deploy(spec, {PAUSE_ENV: "disks"})  # holds the lab's lock while paused
    try:
        wait_for(lambda: (newtlab_home / "labs" / spec.lab / "paused-disks").exists(), 60)
        second = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
        assert second.returncode == 1 and "is busy" in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert run_cli("destroy", spec.lab, "--grace", "0").returncode == 0


@pytest.fixture
def tiny_home(tmp_path: Path, newtlab_home: Path) -> Iterator[Path]:
    """A NEWTLAB_HOME on a 512 KiB tmpfs (the host image linked in from outside)."""
    home = tmp_path / "tiny"
    home.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(home)], check=True)
    try:
        (home / "images").mkdir()
        for image in (newtlab_home / "images").iterdir():
            (home / "images" / image.name).symlink_to(image.resolve())
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def test_a_full_disk_during_overlays_leaves_nothing(  # type: ignore[no-untyped-def]
    make_lab, tiny_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec: SpecDir = make_lab()
    profiles = spec.profiles()
    monkeypatch.setenv("NEWTLAB_HOME", str(tiny_home))
    refused = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert refused.returncode == 1 and "MiB free for the lab's disks" in refused.stderr
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", "--overcommit")
    assert result.returncode == 1
    assert "deploy failed before any VM started" in result.stderr
    assert "No space left on device" in result.stderr, result.stderr
    _assert_clean(spec, tiny_home, profiles)
