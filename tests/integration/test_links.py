"""Links shaped on a running lab: capture, delay, loss, cable pulls, on real guests; the
settings outlive a bridge restart and a VM restart, and topology.json's apply from deploy."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from labkit import SpecDir, run_cli, ssh, ssh_run, status, wait_for

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


def test_capture_impair_and_pull_cables_on_real_guests(make_lab: Any, tmp_path: Path) -> None:
    spec: SpecDir = make_lab(edit=_with_delay)
    deployed = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", timeout=600)
    assert deployed.returncode == 0, deployed.stderr
    ssh("r1", "ip addr add 10.0.12.1/24 dev eth1 && ip link set eth1 up")
    ssh("r2", "ip addr add 10.0.12.2/24 dev eth1 && ip link set eth1 up")
    ssh("r2", "ip addr add 10.0.23.2/24 dev eth2 && ip link set eth2 up")
    ssh("r3", "ip addr add 10.0.23.3/24 dev eth1 && ip link set eth1 up")
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
