"""One line3 lab deployed two VMs at a time (``deploy --boot-parallel 2``), r1's link
moved to eth30 (31 NICs: more than PCI bus 0 holds beside the disk and the rng, so
it sits behind a pci-bridge), r3 on a platform of e1000 NICs; checks that only read it
share it:

- the third VM started only once one of the first two was ready;
- each VM boots its platform's kernel directly (no boot loader);
- the guest sees each NIC at the PCI address the plan gives it, and the NIC behind
  the bridge carries traffic;
- e1000 NICs are named in QEMU order and carry traffic to a virtio-net neighbour;
- files go to a node and back with the host's own tools through
  ``newtlab ssh-config``: scp (the SFTP protocol, OpenSSH 9's default), ``scp -O``
  (the legacy protocol), sftp and rsync over ssh, as docs/tools.md promises.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from labkit import SpecDir, ping, run_cli, ssh, status

from newtlab.home import lab_dir
from newtlab.state import load_state

pytestmark = pytest.mark.integration

LISTING = (
    'for d in /sys/class/net/eth*; do echo "$(cat "$d/address") $(readlink -f "$d/device")"; done'
)
NODE = "r1"  # where files go
SIZE = 512 * 1024 + 13  # not a multiple of any block size
E1000 = "newtlab-host-e1000"  # r3's platform


def _wire_r1_on_eth30(topology: dict[str, Any]) -> None:
    devices = topology["devices"]
    devices["r1"]["interfaces"] = {"eth30": {"link": "r2:eth1"}}
    devices["r2"]["interfaces"]["eth1"]["link"] = "r1:eth30"


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def _add_e1000_platform(platforms: dict[str, Any]) -> None:
    known = platforms["platforms"]
    known[E1000] = {**known["newtlab-host"], "vm_nic_driver": "e1000"}


@pytest.fixture(scope="module")
def deployed(make_shared_lab: Callable[..., SpecDir]) -> SpecDir:
    spec = make_shared_lab(edit=_wire_r1_on_eth30)
    # 31 virtio NICs' receive rings take ~19 MiB of r1's memory: at the image's 128 MiB
    # it had ~12 MiB left, and the copies below ran it out (docs/image.md).
    _edit_json(spec.path / "profiles" / "r1.json", lambda profile: profile.update(vm_memory=192))
    # r3 on a platform of e1000 NICs: r2 — r3 joins virtio-net and e1000.
    _edit_json(spec.path / "platforms.json", _add_e1000_platform)
    _edit_json(spec.path / "profiles" / "r3.json", lambda profile: profile.update(platform=E1000))
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", "--boot-parallel", "2",
                     timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return spec


@pytest.fixture
def lab(deployed: SpecDir, in_module_home: Path) -> SpecDir:
    return deployed


def test_two_at_a_time_boots_the_third_vm_once_one_is_ready(lab: SpecDir) -> None:
    first, second, third = sorted(load_state(lab.lab).nodes.values(), key=lambda n: n.started_at)
    ready = []
    for node in (first, second):
        assert node.boot_seconds is not None
        ready.append(node.started_at + node.boot_seconds)
    assert second.started_at < min(ready)  # the first two booted together
    assert third.started_at >= min(ready) - 0.1  # the third waited for one of them


def test_each_vm_boots_its_kernel_directly(lab: SpecDir) -> None:
    """The platform's kernel and initramfs, not SYSLINUX from the disk (which would add
    ``BOOT_IMAGE=`` and ``initrd=``): the command line is the platform's, word for word."""
    plan = load_state(lab.lab).plan
    for node in ("r1", "r3"):
        planned = plan.node(node)
        argv = planned.qemu_argv
        assert argv[argv.index("-kernel") + 1] == f"disks/{node}.kernel"
        assert os.path.realpath(lab_dir(lab.lab) / f"disks/{node}.kernel") == os.path.realpath(
            planned.kernel
        )
        assert ssh(node, "cat /proc/cmdline").strip() == planned.kernel_cmdline


def _guest_addresses(node: str) -> dict[str, str]:
    """MAC → the PCI address of the NIC (a virtio NIC's device is a child of it)."""
    found = {}
    for line in ssh(node, LISTING).splitlines():
        mac, path = line.split()
        found[mac] = next(p for p in reversed(path.split("/")) if p.startswith("0000:"))
    return found


def test_guest_sees_planned_pci_addresses(lab: SpecDir) -> None:
    plan = load_state(lab.lab).plan
    r1 = plan.node("r1")
    assert r1.pci_bridges and r1.nics[30].pci.startswith("0000:01:")
    for node in ("r1", "r2"):
        planned = {nic.mac: nic.pci for nic in plan.node(node).nics}
        assert _guest_addresses(node) == planned
    # The NIC behind the bridge carries traffic.
    ssh("r1", "ip addr replace 10.0.12.1/24 dev eth30")
    ssh("r2", "ip addr replace 10.0.12.2/24 dev eth1")
    ping("r1", "10.0.12.2")


def test_e1000_nics_follow_qemu_order_and_carry_traffic(lab: SpecDir) -> None:
    plan = load_state(lab.lab).plan
    links = ssh("r3", "ip -o link")
    macs = dict(re.findall(r"\d+: (eth\d+): .* link/ether ([0-9a-f:]+)", links))
    # The guest's ethN is QEMU NIC N: its MAC is the one the plan gave NIC N.
    assert macs == {nic.guest: nic.mac for nic in plan.node("r3").nics}
    assert plan.node("r3").nic_driver == "e1000"
    ssh("r2", "ip addr replace 10.0.23.2/24 dev eth2")
    ssh("r3", "ip addr replace 10.0.23.3/24 dev eth1")
    ping("r2", "10.0.23.3")


def _run(argv: list[str], what: str) -> str:
    result = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:  # what the node said meanwhile: its console's last lines
        console = run_cli("logs", NODE).stdout.splitlines()[-15:]
        state = status()["nodes"]
        config = re.search(r"-F (\S+)", " ".join(argv))  # ssh's own, or rsync's -e
        memory = (  # a guest short of memory drops SSH sessions (the OOM killer)
            subprocess.run(["ssh", "-F", config.group(1), NODE, "free; dmesg | tail -5"],
                           capture_output=True, text=True, timeout=60).stdout
            if config else ""
        )  # fmt: skip
        raise AssertionError(
            f"{what} failed ({result.returncode}): {result.stderr}\n{NODE}'s console:\n"
            + "\n".join(console)
            + f"\nnodes: {[(n['name'], n['status'], n['pid']) for n in state]}"
            + f"\n{NODE}'s memory:\n{memory}"
        )
    return result.stdout


@pytest.fixture
def ssh_config(lab: SpecDir, tmp_path: Path) -> Path:
    """The lab's `newtlab ssh-config` in a file."""
    for tool in ("ssh", "scp", "sftp", "rsync"):
        assert shutil.which(tool), (
            f"no {tool} on this machine: apt-get install openssh-client rsync"
        )
    written = run_cli("ssh-config", lab.lab)
    assert written.returncode == 0, written.stderr
    config = tmp_path / "lab.ssh"
    config.write_text(written.stdout)
    return config


def test_scp_scp_legacy_sftp_and_rsync_to_a_node_and_back(ssh_config: Path, tmp_path: Path) -> None:
    cfg = ["-F", str(ssh_config), "-o", "BatchMode=yes"]

    def round_trip(name: str, put: list[str], get: list[str]) -> str:
        """A file of random bytes to the node with ``put`` (checked there by its
        SHA-256) and back with ``get`` (checked byte for byte here); the time both took.
        SENT, REMOTE and BACK in the commands stand for the three files."""
        payload = os.urandom(SIZE)
        files = {"SENT": tmp_path / f"{name}.bin", "BACK": tmp_path / f"{name}.back"}
        files["SENT"].write_bytes(payload)
        remote = f"/tmp/{name}.bin"

        def fill(argv: list[str]) -> list[str]:
            return [a.replace("REMOTE", remote) if "REMOTE" in a else str(files.get(a, a))
                    for a in argv]  # fmt: skip

        started = time.monotonic()
        _run(fill(put), f"{name}: copying to {NODE}")
        there = _run(["ssh", *cfg, NODE, f"sha256sum {remote}"], f"{name}: sha256sum on {NODE}")
        assert there.split()[0] == hashlib.sha256(payload).hexdigest(), f"{name}: to {NODE}"
        _run(fill(get), f"{name}: copying from {NODE}")
        assert files["BACK"].read_bytes() == payload, f"{name}: back from {NODE}"
        return f"{name} {time.monotonic() - started:.2f} s"

    rsh = shlex.join(["ssh", *cfg])  # rsync's -e: its remote shell command line
    # sftp reads its commands from a batch file (-b): one per direction.
    (tmp_path / "put.sftp").write_text(f"put {tmp_path / 'sftp.bin'} /tmp/sftp.bin\n")
    (tmp_path / "get.sftp").write_text(f"get /tmp/sftp.bin {tmp_path / 'sftp.back'}\n")
    took = [
        round_trip("scp", ["scp", *cfg, "SENT", f"{NODE}:REMOTE"],
                   ["scp", *cfg, f"{NODE}:REMOTE", "BACK"]),
        round_trip("scp-O", ["scp", "-O", *cfg, "SENT", f"{NODE}:REMOTE"],
                   ["scp", "-O", *cfg, f"{NODE}:REMOTE", "BACK"]),
        round_trip("sftp", ["sftp", *cfg, "-b", str(tmp_path / "put.sftp"), NODE],
                   ["sftp", *cfg, "-b", str(tmp_path / "get.sftp"), NODE]),
        round_trip("rsync", ["rsync", "-e", rsh, "SENT", f"{NODE}:REMOTE"],
                   ["rsync", "-e", rsh, f"{NODE}:REMOTE", "BACK"]),
    ]  # fmt: skip
    print("\nround trips: " + ", ".join(took))
