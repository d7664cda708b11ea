"""A lab heals without touching its VMs: the bridge dies, comes back, and pings go on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from labkit import SpecDir, run_cli, ssh, status, wait_for

import labprocs
from newtlab.agent import procs
from newtlab.state import load_state

pytestmark = pytest.mark.integration


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


def test_bridge_dies_and_the_lab_heals(make_lab, newtlab_home: Path) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab()
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert result.returncode == 0, result.stderr
    ssh("r1", "ip addr add 10.0.12.1/24 dev eth1 && ip link set eth1 up")
    ssh("r2", "ip addr add 10.0.12.2/24 dev eth1 && ip link set eth1 up")
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
    lab_dir = newtlab_home / "labs" / spec.lab
    for node in load_state(spec.lab).plan.nodes:
        nics = [n for n in node.nics if n.listen]
        assert nics and all((lab_dir / n.listen).is_socket() for n in nics)

    # kill -9 of the bridge in the middle of a ping: its supervisor brings it back at once.
    ping = subprocess.Popen(
        [sys.executable, "-m", "newtlab", "ssh", "r1", "--", "ping -c 40 -i 0.2 -W 1 10.0.12.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )
    try:
        time.sleep(2.5)
        (bridge,) = status()["bridges"]
        os.kill(bridge["bridge_pid"], signal.SIGKILL)
        output, _ = ping.communicate(timeout=60)
    finally:
        ping.kill()
    got = replies(output)
    assert set(range(30, 40)) <= set(got), output  # the pings resumed...
    assert len(got) >= 30, output  # ...losing at most two seconds' worth
    (bridge,) = status()["bridges"]
    assert bridge["state"] == "up" and bridge["restarts"] == 1
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

    # With the bridge gone again, starting a stopped node brings the bridge back too.
    for pid in procs.find(procs.bridge_tag(spec.lab)):
        os.kill(pid, signal.SIGKILL)
    assert run_cli("stop", "r3", "--grace", "0").returncode == 0
    started = run_cli("start", "r3")
    assert started.returncode == 0, started.stderr
    assert status()["bridges"][0]["state"] == "up"
    ssh("r1", "ping -c 3 -W 2 10.0.12.2")
    assert {n: p for n, p in vm_pids(spec.lab).items() if n != "r3"} == {
        n: p for n, p in vms.items() if n != "r3"
    }

    # A VM whose QEMU dies is shown as exited; repair boots it again, its neighbours untouched.
    before = vm_pids(spec.lab)
    os.kill(before["r3"], signal.SIGKILL)
    wait_for(lambda: status()["nodes"][2]["status"] == "exited")
    repaired = run_cli("repair", spec.lab)
    assert repaired.returncode == 0, repaired.stderr
    assert "r3: its QEMU had exited: started again, ready" in repaired.stdout
    after = vm_pids(spec.lab)
    assert after["r3"] != before["r3"] and (after["r1"], after["r2"]) == (vms["r1"], vms["r2"])
    assert [n["status"] for n in status()["nodes"]] == ["running"] * 3
    assert run_cli("destroy", spec.lab).returncode == 0
    assert procs.find(procs.bridge_tag(spec.lab)) == [] and labprocs.vms(spec.lab) == {}
