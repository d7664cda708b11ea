"""Deploys that fail end with a clear message, and destroy then removes everything."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from labkit import SpecDir, run_cli, two_routers, wait_for

import labprocs
from newtlab.agent import procs
from newtlab.state import load_state

pytestmark = pytest.mark.integration


def assert_clean(spec: SpecDir, home: Path, profiles: dict[str, bytes]) -> None:
    assert labprocs.vms(spec.lab) == {}
    assert procs.find(procs.bridge_tag(spec.lab)) == []
    assert not (home / "labs" / spec.lab).exists()
    assert spec.profiles() == profiles


def test_missing_image(make_lab, newtlab_home: Path) -> None:  # type: ignore[no-untyped-def]
    def edit(topology: dict[str, Any]) -> None:
        pass

    spec: SpecDir = make_lab(edit=edit)
    platforms = json.loads((spec.path / "platforms.json").read_text())
    platforms["platforms"]["newtlab-host"]["vm_image"] = "/nonexistent/none.qcow2"
    (spec.path / "platforms.json").write_text(json.dumps(platforms))
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert result.returncode == 1
    assert "r1: vm_image not found: /nonexistent/none.qcow2" in result.stderr
    assert "Traceback" not in result.stderr
    assert labprocs.vms(spec.lab) == {}


def test_every_bad_image_of_every_node_at_once(make_lab, newtlab_home: Path) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab()
    for node, extra in (("r1", {"vm_image_sha256": "ab" * 32}),
                        ("r3", {"vm_image": "/nonexistent/other.qcow2"})):  # fmt: skip
        profile = spec.path / "profiles" / f"{node}.json"
        profile.write_text(json.dumps({**json.loads(profile.read_text()), **extra}))
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert result.returncode == 1
    assert "r1: vm_image " in result.stderr and "not the vm_image_sha256 abab" in result.stderr
    assert "r3: vm_image not found: /nonexistent/other.qcow2" in result.stderr
    assert "r2:" not in result.stderr  # its image is fine
    assert not (newtlab_home / "labs" / spec.lab).exists()  # nothing created
    assert labprocs.vms(spec.lab) == {}


def test_a_lab_too_big_for_the_machine_starts_nothing_unless_overcommitted(  # type: ignore[no-untyped-def]
    make_lab, newtlab_home: Path
) -> None:
    spec: SpecDir = make_lab(edit=two_routers)  # a third VM would show nothing more
    with open("/proc/meminfo") as meminfo:
        available = next(int(line.split()[1]) // 1024 for line in meminfo
                         if line.startswith("MemAvailable:"))  # fmt: skip
    # Two VMs: more than the machine has, QEMU aside, even if other tests free 4 GiB meanwhile.
    each = available // 2 + 2048
    platforms = json.loads((spec.path / "platforms.json").read_text())
    platforms["platforms"]["newtlab-host"]["vm_memory"] = each
    (spec.path / "platforms.json").write_text(json.dumps(platforms))
    refused = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert refused.returncode == 1
    assert f"2 VMs need {2 * (each + 200)} MiB ({2 * each} of guest memory" in refused.stderr
    assert "`--overcommit` deploys anyway" in refused.stderr
    assert not (newtlab_home / "labs" / spec.lab).exists() and labprocs.vms(spec.lab) == {}
    # Guests touch little of their memory: overcommitted, the lab runs.
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", "--overcommit")
    assert result.returncode == 0, result.stderr
    assert len(labprocs.vms(spec.lab)) == 2


def test_port_already_taken(make_lab, newtlab_home: Path) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab()
    profiles = spec.profiles()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", spec.ports["ssh_port_base"] + 1))
        holder.listen(1)
        result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert result.returncode == 1
    assert f"r2 SSH: port {spec.ports['ssh_port_base'] + 1} in use" in result.stderr
    assert_clean(spec, newtlab_home, profiles)


def background_deploy(spec: SpecDir, output: int) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "newtlab", "deploy", "-S", str(spec.path), "--accel", "tcg"]
    return subprocess.Popen(argv, stdout=output, stderr=output, text=True, env=os.environ.copy())


def running_vms(lab: str) -> dict[int, str]:
    return labprocs.vms(lab)


def test_qemu_dies_during_boot(make_lab, newtlab_home: Path) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab(edit=two_routers)
    profiles = spec.profiles()
    deploy = background_deploy(spec, subprocess.PIPE)
    try:
        vms = wait_for(lambda: len(running_vms(spec.lab)) == 2 and running_vms(spec.lab))
        victim = next(pid for pid, node in vms.items() if node == "r2")
        os.kill(victim, signal.SIGKILL)
        _, stderr = deploy.communicate(timeout=120)
    finally:
        deploy.kill()
    assert deploy.returncode == 1
    assert "r2: QEMU for r2" in stderr  # exited while starting, or is not running
    assert "newtlab destroy" in stderr and "Traceback" not in stderr
    state = load_state(spec.lab)
    assert state.nodes["r2"].status == "error"
    result = run_cli("destroy", spec.lab)
    assert result.returncode == 0, result.stderr
    assert_clean(spec, newtlab_home, profiles)


def test_deploy_killed_half_way(make_lab, newtlab_home: Path) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab()
    profiles = spec.profiles()
    deploy = background_deploy(spec, subprocess.DEVNULL)
    try:
        wait_for(lambda: len(running_vms(spec.lab)) >= 2)
    finally:
        deploy.send_signal(signal.SIGKILL)
        deploy.wait()
    assert running_vms(spec.lab)  # VMs outlive the killed CLI
    again = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert again.returncode == 1 and "already deployed" in again.stderr
    result = run_cli("destroy", spec.lab)
    assert result.returncode == 0, result.stderr
    assert_clean(spec, newtlab_home, profiles)


def test_boot_timeout_names_the_node_and_leaves_it_for_inspection(
    make_lab, newtlab_home: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab()
    profiles = spec.profiles()
    blank = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(blank), "16M"], check=True)
    platforms = json.loads((spec.path / "platforms.json").read_text())
    platforms["platforms"]["newtlab-host"].update(vm_image=str(blank), vm_boot_timeout=4)
    (spec.path / "platforms.json").write_text(json.dumps(platforms))
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert result.returncode == 1
    said = " ".join(result.stderr.split())
    assert (
        "r1: not ready within vm_boot_timeout (4 s): the serial console stalled waiting for "
        "step 'login' /login:/ (or" in said
    ), result.stderr
    assert "raise vm_boot_timeout of platform newtlab-host in platforms.json" in said
    status = json.loads(run_cli("status", spec.lab, "--json").stdout)
    assert {n["status"] for n in status["nodes"]} == {"error"}
    assert len(running_vms(spec.lab)) == 3  # still there to look at
    assert run_cli("destroy", spec.lab, "--grace", "0").returncode == 0
    assert_clean(spec, newtlab_home, profiles)
