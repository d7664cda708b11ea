"""One line3 lab on real guests, shared by two tests: its links shaped (capture, delay,
loss, cable pulls; the settings outlive a bridge restart and a VM restart, and
topology.json's apply from deploy), then the lab healing without touching its VMs (the
bridge dies, comes back, and pings go on; repair and start bring it back)."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from labkit import SpecDir, run_cli, ssh, ssh_run, status, wait_for

import labprocs
from newtlab.agent import procs
from newtlab.state import load_state

pytestmark = pytest.mark.integration


def cli(*args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def rtts(node: str, address: str, count: int = 4) -> list[float]:
    """Round trips of ``count`` pings (ms); [] when none came back."""
    result = ssh_run(node, f"ping -c {count} -i 0.3 -W 2 {address}")
    return [float(t) for t in re.findall(r"time=([\d.]+) ms", result.stdout)]


def carrier(node: str, iface: str) -> str:
    return ssh(node, f"cat /sys/class/net/{iface}/carrier").strip()


def frames(pcap: bytes) -> list[bytes]:
    """The frames of a pcap file (checking its header)."""
    magic, major, minor = struct.unpack_from("<IHH", pcap)
    assert (magic, major, minor) == (0xA1B2C3D4, 2, 4)
    found, pos = [], 24
    while pos < len(pcap):
        length = struct.unpack_from("<IIII", pcap, pos)[2]
        found.append(pcap[pos + 16 : pos + 16 + length])
        pos += 16 + length
    assert pos == len(pcap)  # whole records only
    return found


def icmp_echo(frame: bytes, kind: int) -> bool:
    """An IPv4 ICMP echo request (8) or reply (0)."""
    return frame[12:14] == b"\x08\x00" and frame[23] == 1 and frame[34] == kind


def _with_delay(topology: dict[str, Any]) -> None:
    topology["newtlab"]["links"] = {"r3:eth1": {"delay": "40ms", "direction": "in"}}


@pytest.fixture(scope="module")
def deployed(make_shared_lab: Callable[..., SpecDir]) -> SpecDir:
    """line3 with a delay on r3:eth1 from topology.json, its links addressed."""
    spec = make_shared_lab(edit=_with_delay)
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", timeout=600)
    assert result.returncode == 0, result.stderr
    ssh("r1", "ip addr add 10.0.12.1/24 dev eth1 && ip link set eth1 up")
    ssh("r2", "ip addr add 10.0.12.2/24 dev eth1 && ip link set eth1 up")
    ssh("r2", "ip addr add 10.0.23.2/24 dev eth2 && ip link set eth2 up")
    ssh("r3", "ip addr add 10.0.23.3/24 dev eth1 && ip link set eth1 up")
    return spec


@pytest.fixture
def lab(deployed: SpecDir, in_module_home: Path) -> SpecDir:
    return deployed


def test_capture_impair_and_pull_cables_on_real_guests(lab: SpecDir, tmp_path: Path) -> None:
    rtts("r1", "10.0.12.2", 2)  # ARP settled

    # topology.json's delay applies from deploy on: what r3 receives waits 40 ms.
    assert min(rtts("r2", "10.0.23.3")) >= 40
    shown = json.loads(cli("link", "show", "--json"))
    assert shown["r2:eth2--r3:eth1"]["a"] == {"delay": 0.04}

    # A capture holds the pings sent during it, both ways, and is a valid pcap.
    out = tmp_path / "r1.pcap"
    capture = subprocess.Popen(
        [sys.executable, "-m", "newtlab", "capture", "r1:eth1", "-w", str(out),
         "--duration", "8"], stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(2)
        assert len(rtts("r1", "10.0.12.2", 3)) == 3
        assert capture.wait(timeout=30) == 0, capture.stderr.read() if capture.stderr else ""
    finally:
        capture.kill()
    captured = frames(out.read_bytes())
    assert sum(icmp_echo(f, 8) for f in captured) >= 3
    assert sum(icmp_echo(f, 0) for f in captured) >= 3
    # -w - streams; --count stops after that many frames
    streamed = subprocess.Popen(
        [sys.executable, "-m", "newtlab", "capture", "r1:eth1", "-w", "-", "--count", "4"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(1.5)
        rtts("r1", "10.0.12.2", 3)
        data, _ = streamed.communicate(timeout=30)
    finally:
        streamed.kill()
    assert len(frames(data)) == 4

    # A 60 ms delay both ways shows in ping times; reset removes it.
    before = min(rtts("r1", "10.0.12.2"))
    cli("link", "set", "r1:eth1", "--delay", "60ms")
    delayed = rtts("r1", "10.0.12.2")
    assert len(delayed) == 4 and min(delayed) >= 120, delayed
    assert "A→Z delay 60ms" in json.dumps(status()["links"][0]["impairment"], ensure_ascii=False)

    # ... and survives a bridge restart (kill -9: its supervisor starts it again).
    (bridge,) = status()["bridges"]
    os.kill(bridge["bridge_pid"], signal.SIGKILL)
    wait_for(lambda: status()["bridges"][0]["restarts"] == 1, timeout=30)
    wait_for(lambda: all(link["connected"] for link in status()["links"]), timeout=30)
    assert min(rtts("r1", "10.0.12.2")) >= 120
    cli("link", "reset", "r1:eth1")
    assert min(rtts("r1", "10.0.12.2")) < before + 40

    # 100 % loss stops pings.
    cli("link", "set", "r1:eth1", "--loss", "100%", "--direction", "out")
    assert rtts("r1", "10.0.12.2", 3) == []
    cli("link", "reset", "r1:eth1")
    assert len(rtts("r1", "10.0.12.2", 3)) == 3

    # A pulled cable: both guests lose carrier, nothing crosses; up brings it all back.
    assert carrier("r1", "eth1") == "1" and carrier("r2", "eth1") == "1"
    cli("link", "down", "r2:eth1")
    assert carrier("r1", "eth1") == "0" and carrier("r2", "eth1") == "0"
    assert rtts("r1", "10.0.12.2", 2) == []
    assert status()["links"][0]["down"] is True
    # a VM restarted while its cable is out comes back without carrier
    cli("stop", "r1", "--grace", "0")
    cli("start", "r1")
    ssh("r1", "ip addr add 10.0.12.1/24 dev eth1 && ip link set eth1 up")
    assert carrier("r1", "eth1") == "0"
    cli("link", "up", "r2:eth1")
    assert carrier("r1", "eth1") == "1" and carrier("r2", "eth1") == "1"
    wait_for(lambda: len(rtts("r1", "10.0.12.2", 2)) == 2, timeout=30)


def vm_pids(lab: str) -> dict[str, int]:
    return {node: record.pid for node, record in load_state(lab).nodes.items()}


def replies(output: str) -> list[int]:
    return [int(seq) for seq in re.findall(r"seq=(\d+)", output)]


def listeners(pids: set[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket these processes listen on."""
    return [
        (c.pid, c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]


def test_bridge_dies_and_the_lab_heals(lab: SpecDir, in_module_home: Path) -> None:
    spec = lab
    ssh("r1", "ping -c 2 -W 2 10.0.12.2 || ping -c 2 -W 2 10.0.12.2")
    vms = vm_pids(spec.lab)

    # The VMs listen for their links on Unix sockets in the lab directory; of the lab,
    # only the VMs' SSH forwards listen on TCP, on loopback.
    data = status()
    lab_pids = set(labprocs.vms(spec.lab)) | set(procs.find(procs.bridge_tag(spec.lab)))
    listening = listeners(lab_pids)
    ssh_ports = {node["name"]: node["ssh_port"] for node in data["nodes"]}
    assert sorted((pid, address, port) for pid, address, port in listening) == sorted(
        (pid, "127.0.0.1", ssh_ports[node]) for pid, node in labprocs.vms(spec.lab).items()
    )
    lab_dir = in_module_home / "labs" / spec.lab
    for node in load_state(spec.lab).plan.nodes:
        nics = [n for n in node.nics if n.listen]
        assert nics and all((lab_dir / n.listen).is_socket() for n in nics)

    # kill -9 of the bridge in the middle of a ping: its supervisor brings it back at once.
    # (Read before the ping starts: on a busy machine a status takes seconds of its 8.)
    (bridge,) = status()["bridges"]
    restarts = bridge["restarts"]  # the links test restarted it before
    ping = subprocess.Popen(
        [sys.executable, "-m", "newtlab", "ssh", "r1", "--", "ping -c 40 -i 0.2 -W 1 10.0.12.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )
    try:
        time.sleep(2.5)
        os.kill(bridge["bridge_pid"], signal.SIGKILL)
        output, _ = ping.communicate(timeout=60)
    finally:
        ping.kill()
    got = replies(output)
    assert set(range(30, 40)) <= set(got), output  # the pings resumed...
    assert len(got) >= 30, output  # ...losing at most two seconds' worth
    (bridge,) = status()["bridges"]
    assert bridge["state"] == "up" and bridge["restarts"] == restarts + 1
    assert vm_pids(spec.lab) == vms and all(psutil.pid_exists(p) for p in vms.values())

    # kill -9 of the supervisor and the bridge together: status says so; repair brings it back.
    for pid in procs.find(procs.bridge_tag(spec.lab)):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not procs.find(procs.bridge_tag(spec.lab)))
    data = status()
    assert data["bridges"][0]["state"] == "down"
    assert not any(link["connected"] for link in data["links"])
    shown = run_cli("status").stdout
    assert "bridge on local: down" in shown and f"newtlab repair {spec.lab}" in shown
    repaired = run_cli("repair", spec.lab)
    assert repaired.returncode == 0, repaired.stderr
    assert "bridge on local was down: started again" in repaired.stdout
    wait_for(lambda: all(link["connected"] for link in status()["links"]))
    ssh("r1", "ping -c 3 -W 2 10.0.12.2")
    assert vm_pids(spec.lab) == vms
    assert "nothing to repair" in run_cli("repair", spec.lab).stdout

    # The bridge gone again and r3's QEMU dead: status shows r3 exited; starting it brings
    # the bridge back too, its neighbours untouched. (Repair of a VM whose QEMU exited:
    # test_libvirt.py, engine aside the same path.)
    for pid in procs.find(procs.bridge_tag(spec.lab)):
        os.kill(pid, signal.SIGKILL)
    os.kill(vms["r3"], signal.SIGKILL)
    wait_for(lambda: status()["nodes"][2]["status"] == "exited")
    started = run_cli("start", "r3")
    assert started.returncode == 0, started.stderr
    assert status()["bridges"][0]["state"] == "up"
    ssh("r1", "ping -c 3 -W 2 10.0.12.2")
    after = vm_pids(spec.lab)
    assert after["r3"] != vms["r3"] and (after["r1"], after["r2"]) == (vms["r1"], vms["r2"])
    assert [n["status"] for n in status()["nodes"]] == ["running"] * 3
    assert run_cli("destroy", spec.lab).returncode == 0
    assert procs.find(procs.bridge_tag(spec.lab)) == [] and labprocs.vms(spec.lab) == {}
