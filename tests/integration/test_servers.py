"""One lab over several servers, each a network namespace with its own sshd and private
/tmp and ~/.newtlab (see testservers): deployed, reached, healed and destroyed over SSH."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labkit import SpecDir, close_ssh, run_cli, ssh, status, wait_for

from newtlab.runtime.images import content_digest
from newtlab.runtime.transports import bundle
from otheruser import other_user, probe_argv, reached
from testservers import TestServer, servers

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[list[TestServer]]:
    """Two servers; torn down after the test's labs are destroyed (requested first)."""
    with servers(2, tmp_path / "servers") as found:
        yield found


def spread(make_lab: Callable[..., SpecDir], pool: list[TestServer]) -> SpecDir:
    """examples/line3 over the pool: r1 pinned to s1, r3 to s2, r2 placed (on s1).

    r1 — r2 is a link inside s1; r2 — r3 crosses from s1 to s2.
    """

    def edit(topology: dict) -> None:  # type: ignore[type-arg]
        topology["newtlab"]["servers"] = [
            {"name": s.name, "address": s.address, "user": s.user,
             "identity_file": str(s.identity_file)}
            for s in pool
        ]  # fmt: skip

    spec = make_lab(edit=edit)
    for node, server in (("r1", "s1"), ("r3", "s2")):
        path = spec.path / "profiles" / f"{node}.json"
        profile = json.loads(path.read_text())
        path.write_text(json.dumps({**profile, "vm_host": server}, indent=4))
    return spec


def lab_processes(server: TestServer, lab: str) -> list[str]:
    """Command lines of the lab's QEMUs and bridges on ``server`` (seen inside it)."""
    found = server.run(["ps", "-eo", "args="]).stdout.splitlines()
    return [p for p in found if f"newtlab:{lab}:" in p or f"--lab {lab}" in p]


def qemu_nodes(server: TestServer, lab: str) -> list[str]:
    return sorted(re.findall(rf"-name newtlab:{lab}:(\S+)", "\n".join(lab_processes(server, lab))))


def plant_ghost(server: TestServer, lab: str) -> None:
    """A process of lab ``lab`` on ``server`` as deploy leaves one (tagged, in the lab's
    directory there) whose state this machine does not have."""
    directory = f"/root/.newtlab/labs/{lab}"
    sleeper = f"setsid -f python3 -c 'import time; time.sleep(600)' -name newtlab:{lab}:g1"
    command = f"mkdir -p {directory} && cd {directory} && {sleeper} </dev/null >/dev/null 2>&1"
    assert server.run(["sh", "-c", command]).returncode == 0
    wait_for(lambda: qemu_nodes(server, lab) == ["g1"], timeout=10)


def refused(address: str, port: int) -> bool:
    """True if nothing listening at ``address:port`` will talk to us."""
    try:
        with socket.create_connection((address, port), timeout=3) as sock:
            sock.settimeout(3)
            return sock.recv(1) == b""  # accepted, then closed at once
    except OSError:
        return True


def listeners(server: TestServer) -> set[tuple[str, int]]:
    lines = server.run(["ss", "-ltnH"]).stdout.splitlines()
    found = set()
    for line in lines:
        address, _, port = line.split()[3].rpartition(":")
        found.add((address, int(port)))
    return found


def test_a_lab_over_two_servers(
    pool: list[TestServer], make_lab: Callable[..., SpecDir], newtlab_home: Path
) -> None:
    s1, s2 = pool
    spec = spread(make_lab, pool)
    profiles_before = spec.profiles()
    deployed = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", timeout=600)
    assert deployed.returncode == 0, deployed.stderr + deployed.stdout

    # Placement: pinned and placed nodes run on their servers, and nowhere else.
    assert qemu_nodes(s1, spec.lab) == ["r1", "r2"] and qemu_nodes(s2, spec.lab) == ["r3"]
    data = status()
    assert [(n["name"], n["host"], n["status"]) for n in data["nodes"]] == [
        ("r1", "s1", "running"), ("r2", "s1", "running"), ("r3", "s2", "running")
    ]  # fmt: skip
    # The base image, its kernel and initramfs went to each server once, stored by content.
    uploaded = [
        f"/root/.newtlab/images/{content_digest(newtlab_home / 'images' / name)[:16]}/{name}"
        for name in ("newtlab-host.qcow2", "newtlab-host.vmlinux", "newtlab-host.initrd.gz")
    ]
    for path in uploaded:
        assert s1.holds_path(path) and s2.holds_path(path)
        assert deployed.stdout.count(f"uploaded {Path(path).name}") == 2
    stored = uploaded[0]

    # Every node answers SSH; profiles point newtron at the server's address.
    for node in ("r1", "r2", "r3"):
        assert ssh(node, "hostname").strip() == node
    console_log = run_cli("logs", "r3")  # read on s2, through its connection
    assert console_log.returncode == 0 and "r3# " in console_log.stdout  # its shell prompt
    assert "qemu-system-x86_64" not in run_cli("logs", "r3", "--qemu").stderr
    r3 = json.loads((spec.path / "profiles" / "r3.json").read_text())
    assert r3["mgmt_ip"] == s2.address and r3["ssh_port"] == spec.ports["ssh_port_base"] + 2
    ssh("r1", "ip addr add 10.0.12.1/24 dev eth1 && ip link set eth1 up")
    ssh("r2", "ip addr add 10.0.12.2/24 dev eth1 && ip link set eth1 up")
    ssh("r2", "ip addr add 10.0.23.2/24 dev eth2 && ip link set eth2 up")
    ssh("r3", "ip addr add 10.0.23.3/24 dev eth1 && ip link set eth1 up")
    ssh("r1", "ping -c 3 -W 2 10.0.12.2 || ping -c 3 -W 2 10.0.12.2")  # inside s1
    ssh("r3", "ping -c 3 -W 2 10.0.23.2 || ping -c 3 -W 2 10.0.23.2")  # s2 to s1

    # Links shaped across servers: the worker bridge (s1's) is reached through s1's SSH
    # connection; a pulled cable drops the carrier of r2 on s1 and of r3 on s2.
    assert run_cli("link", "set", "r3:eth1", "--delay", "50ms").returncode == 0
    times = re.findall(r"time=([\d.]+) ms", ssh("r3", "ping -c 3 -i 0.3 -W 2 10.0.23.2"))
    assert len(times) == 3 and min(map(float, times)) >= 100, times
    capture = subprocess.Popen(
        [sys.executable, "-m", "newtlab", "capture", "r3:eth1", "-w", "-", "--count", "2"],
        stdout=subprocess.PIPE, env=os.environ.copy(),
    )  # fmt: skip
    try:
        time.sleep(2)
        ssh("r3", "ping -c 2 -W 2 10.0.23.2")
        pcap, _ = capture.communicate(timeout=30)
    finally:
        capture.kill()
    assert pcap[:4] == bytes.fromhex("d4c3b2a1") and len(pcap) > 24 + 2 * 16
    assert run_cli("link", "reset", "r3:eth1").returncode == 0
    assert run_cli("link", "down", "r3:eth1").returncode == 0
    assert ssh("r3", "cat /sys/class/net/eth1/carrier").strip() == "0"
    assert ssh("r2", "cat /sys/class/net/eth2/carrier").strip() == "0"
    assert run_cli("link", "up", "r3:eth1").returncode == 0
    assert ssh("r3", "cat /sys/class/net/eth1/carrier").strip() == "1"
    ssh("r3", "ping -c 3 -W 2 10.0.23.2 || ping -c 3 -W 2 10.0.23.2")

    # Only what must be exposed is: sshd, each VM's SSH forward, the one cross-host
    # bridge port (on s1, the link's worker), which takes only s2. Everything else of
    # the lab listens on loopback inside its server.
    ssh_ports = {n["name"]: n["ssh_port"] for n in data["nodes"]}
    cross = next(link for link in data["links"] if link["a_host"] != link["z_host"])
    exposed = {
        (s1.address, 22), (s1.address, ssh_ports["r1"]), (s1.address, ssh_ports["r2"]),
        (s1.address, cross["z_port"]), (s2.address, 22), (s2.address, ssh_ports["r3"]),
    }  # fmt: skip
    beyond_loopback = {(a, p) for s in pool for a, p in listeners(s) if a != "127.0.0.1"}
    assert beyond_loopback == exposed
    # and on loopback nothing at all: consoles, VM NICs and the bridges' stats and
    # control are Unix sockets in each server's lab directory.
    assert {(s.name, p) for s in pool for a, p in listeners(s) if a == "127.0.0.1"} == set()
    # So a lab is its owner's on a server too: another user there reaches none of them.
    lab_dir = f"/root/.newtlab/labs/{spec.lab}"
    sockets = s2.run(["find", lab_dir, "-type", "s"], check=True).stdout.split()
    assert {Path(p).name for p in sockets} >= {"r3.console", "r3.nic1", "newtlink.sock"}
    # Every directory above the lab's made passable (a chroot's / may be 0700), then put back.
    above = ["/", "/root", "/root/.newtlab", "/root/.newtlab/labs"]
    modes = s2.run(["stat", "-c", "%a", *above], check=True).stdout.split()
    with other_user() as other:
        s2.run(["chmod", "o+x", *above], check=True)
        try:
            probe = s2.run(probe_argv(other, sockets), timeout=60)
        finally:
            for path, mode in zip(above, modes, strict=True):
                s2.run(["chmod", mode, path], check=True)
    answers = reached(probe.stdout)
    assert answers.pop("control", "") == "connected", probe.stdout + probe.stderr
    assert len(answers) == len(sockets) and set(answers.values()) == {"PermissionError"}
    assert refused(s1.address, cross["z_port"])  # we are not s2
    assert status()["links"][1]["stats"]["z_refused_allow"] == 1
    for port in (cross["a_port"], spec.ports["console_port_base"], spec.ports["link_port_base"]):
        assert refused(s1.address, port)

    # kill -9 of s1's bridge in the middle of a ping across servers: it heals, no VM restarts.
    before = {s.name: lab_processes(s, spec.lab) for s in pool}
    # Read before the ping starts: on a busy machine a status takes seconds of its 8.
    bridge = next(b for b in status()["bridges"] if b["host"] == "s1")["bridge_pid"]
    ping = subprocess.Popen(
        [sys.executable, "-m", "newtlab", "ssh", "r3", "--", "ping -c 40 -i 0.2 -W 1 10.0.23.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
    )  # fmt: skip
    try:
        time.sleep(2.5)
        assert s1.run(["kill", "-9", str(bridge)]).returncode == 0
        output, _ = ping.communicate(timeout=60)
    finally:
        ping.kill()
    replies = [int(seq) for seq in re.findall(r"seq=(\d+)", output)]
    assert set(range(30, 40)) <= set(replies) and len(replies) >= 30, output
    s1_bridge = next(b for b in status()["bridges"] if b["host"] == "s1")
    assert s1_bridge["state"] == "up" and s1_bridge["restarts"] == 1
    qemus = {s.name: [p for p in before[s.name] if "qemu" in p] for s in pool}
    assert {s.name: [p for p in lab_processes(s, spec.lab) if "qemu" in p] for s in pool} == qemus

    # stop/start of a node on a server: its neighbour across servers keeps its QEMU.
    assert run_cli("stop", "r3", "--grace", "0").returncode == 0
    assert qemu_nodes(s2, spec.lab) == [] and qemu_nodes(s1, spec.lab) == ["r1", "r2"]
    assert run_cli("start", "r3").returncode == 0
    ssh("r3", "ip addr add 10.0.23.3/24 dev eth1 && ip link set eth1 up")
    ssh("r3", "ping -c 3 -W 2 10.0.23.2 || ping -c 3 -W 2 10.0.23.2")

    # A snapshot of the pool: each server keeps its own VMs' part; restored in place (the
    # same QEMUs), r3's address is back and the link across servers carries again.
    saved = run_cli("snapshot", "save", "pool", "--json")
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout)["hosts"] == ["s1", "s2"]
    part = f"/root/.newtlab/snapshots/{spec.lab}/pool"
    assert s1.holds_path(f"{part}/r1.qcow2") and s1.holds_path(f"{part}/r2.qcow2")
    assert s2.holds_path(f"{part}/r3.qcow2") and not s1.holds_path(f"{part}/r3.qcow2")
    qemus = {s.name: [p for p in lab_processes(s, spec.lab) if "qemu" in p] for s in pool}
    ssh("r3", "ip addr flush dev eth1")
    restored = run_cli("snapshot", "restore", "pool")
    assert restored.returncode == 0, restored.stderr
    close_ssh()  # connections open at the restore belong to the guests' present
    assert {s.name: [p for p in lab_processes(s, spec.lab) if "qemu" in p] for s in pool} == qemus
    ssh("r3", "ping -c 3 -W 2 10.0.23.2 || ping -c 3 -W 2 10.0.23.2")
    assert run_cli("snapshot", "delete", "pool").returncode == 0
    assert not s1.holds_path(part) and not s2.holds_path(part)

    # A server whose processes were all killed: status says so.
    # (the brackets keep the pattern from matching the command line that carries it)
    s2.run(["pkill", "-9", "-f", "--", f"-[-]lab {spec.lab}|newtlab[:]{spec.lab}:"])
    wait_for(lambda: not lab_processes(s2, spec.lab), timeout=10)
    data = status()
    assert data["nodes"][2]["status"] == "exited"
    assert next(b for b in data["bridges"] if b["host"] == "s2")["state"] == "down"

    # prune: what a server keeps that nothing uses (an old runtime, an interrupted copy,
    # an image no lab uses, an interrupted upload), never what the lab uses or the user's own.
    home = "/root/.newtlab"
    planted = [f"{home}/runtime/00000000deadbeef", f"{home}/runtime/.00000000deadbeef.0123abcd",
               f"{home}/images/ffffffffffffffff/old.qcow2", f"{stored}.part-0123abcd"]  # fmt: skip
    files = " ".join([*planted[2:], f"{home}/images/mine.qcow2"])
    plant = (
        f"mkdir -p {planted[0]}/newtlink {planted[1]} {home}/images/ffffffffffffffff && "
        f"echo x > {planted[0]}/newtlink/a.py && "
        f"for f in {files}; do head -c 3000000 /dev/zero > $f; done"
    )
    s1.run(["sh", "-c", plant], check=True)
    listed = run_cli("prune", "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert report["orphans"] == [] and report["unreachable"] == {} and report["removed"] is False
    assert sorted(c["path"] for c in report["caches"] if c["host"] == "s1") == sorted(planted)
    assert [c for c in report["caches"] if c["host"] != "s1"] == []
    assert next(c for c in report["caches"] if c["path"] == planted[2])["bytes"] == 3000000

    # Destroy leaves no process, port or lab file on any server; caches stay.
    destroyed = run_cli("destroy", spec.lab)
    assert destroyed.returncode == 0, destroyed.stderr
    for server in pool:
        assert lab_processes(server, spec.lab) == []
        assert not server.holds_path(f"/root/.newtlab/labs/{spec.lab}")
        assert server.holds_path(stored)
        assert {p for _, p in listeners(server)} <= {22}
    assert not (newtlab_home / "labs" / spec.lab).exists()
    assert spec.profiles() == profiles_before

    # With no lab left, the spec dir names the servers; the image is unused now too.
    pruned = run_cli("prune", "-S", str(spec.path), "--yes", "--json")
    assert pruned.returncode == 0, pruned.stderr
    removed = json.loads(pruned.stdout)["caches_removed"]
    assert sorted(removed) == sorted(
        [f"s1:{p}" for p in [*planted, *uploaded]] + [f"s2:{p}" for p in uploaded]
    )
    for server in pool:
        assert not any(server.holds_path(p) for p in [*planted, *uploaded])
        assert server.holds_path(f"{home}/runtime/{bundle.digest()}")  # the one in use
    assert s1.holds_path(f"{home}/images/mine.qcow2")
    assert json.loads(run_cli("prune", "-S", str(spec.path), "--json").stdout)["caches"] == []

    # A lab whose state here is lost (or that another machine deployed) while it runs on
    # the servers: named with its servers, cleaned by destroy -S or prune -S.
    for server in pool:
        plant_ghost(server, "ghost")
    refused_deploy = run_cli("deploy", "-S", str(spec.path), "--name", "ghost", "--accel", "tcg")
    assert refused_deploy.returncode == 1
    assert re.search(r"running without state here \(on s1: pids \d+; on s2: pids \d+\)",
                     refused_deploy.stderr), refused_deploy.stderr  # fmt: skip
    assert "`newtlab destroy ghost -S DIR`" in refused_deploy.stderr
    found = json.loads(run_cli("prune", "-S", str(spec.path), "--json").stdout)["orphans"]
    assert {(o["lab"], o["host"]) for o in found} == {("ghost", "s1"), ("ghost", "s2")}
    assert run_cli("destroy", "ghost").returncode == 1  # not on this machine
    cleaned = run_cli("destroy", "ghost", "-S", str(spec.path))
    assert cleaned.returncode == 0, cleaned.stderr
    assert all(lab_processes(server, "ghost") == [] for server in pool)
    assert not s1.holds_path("/root/.newtlab/labs/ghost")
    plant_ghost(s2, "ghost")
    assert run_cli("prune", "-S", str(spec.path), "--yes").returncode == 0
    assert lab_processes(s2, "ghost") == []


def test_a_port_taken_on_one_server_stops_deploy_before_anything_starts(
    pool: list[TestServer], make_lab: Callable[..., SpecDir], newtlab_home: Path
) -> None:
    s2 = pool[1]
    spec = spread(make_lab, pool)
    taken = spec.ports["ssh_port_base"] + 2  # r3's SSH forward, on s2's address
    hold = f"import socket, time; s = socket.socket(); s.bind(('{s2.address}', {taken}));" \
           " s.listen(); time.sleep(600)"  # fmt: skip
    detached = f'exec python3 -c "{hold}" </dev/null >/dev/null 2>&1'  # no pipe kept open
    assert s2.run(["setsid", "-f", "sh", "-c", detached]).returncode == 0
    wait_for(lambda: (s2.address, taken) in listeners(s2), timeout=10)
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert result.returncode == 1
    assert f"r3 SSH: port {taken} in use" in result.stderr
    assert "Traceback" not in result.stderr
    for server in pool:  # nothing started anywhere, not even a lab directory
        assert lab_processes(server, spec.lab) == []
        assert not server.holds_path(f"/root/.newtlab/labs/{spec.lab}")
    assert not (newtlab_home / "labs" / spec.lab).exists()


def test_a_killed_deploy_is_destroyed_everywhere_even_with_a_server_down(
    pool: list[TestServer], make_lab: Callable[..., SpecDir], newtlab_home: Path
) -> None:
    s1, s2 = pool
    spec = spread(make_lab, pool)
    argv = [sys.executable, "-m", "newtlab", "deploy", "-S", str(spec.path), "--accel", "tcg"]
    deploy = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy()
    )
    try:
        wait_for(lambda: qemu_nodes(s1, spec.lab) and qemu_nodes(s2, spec.lab), timeout=120)
    finally:
        deploy.send_signal(signal.SIGKILL)
        deploy.wait()
    assert qemu_nodes(s2, spec.lab) == ["r3"]  # outlived the killed deploy

    s2.stop_sshd()
    first = run_cli("destroy", spec.lab)
    assert first.returncode == 1
    assert "server s2 unreachable" in first.stderr and f"newtlab destroy {spec.lab}" in first.stderr
    assert lab_processes(s1, spec.lab) == []  # the reachable server is clean
    assert not s1.holds_path(f"/root/.newtlab/labs/{spec.lab}")
    assert lab_processes(s2, spec.lab) != []  # ...and s2's share is kept in the state
    assert (newtlab_home / "labs" / spec.lab / "state.json").exists()
    shown = run_cli("status", spec.lab)  # what it could ask, and that it is incomplete
    assert shown.returncode == 1 and "server s2 did not answer" in shown.stdout
    assert "status is incomplete: server s2 did not answer" in shown.stderr
    assert "SERVER" in shown.stdout  # a pool's nodes show where they run
    links = {
        f"{k['a']}--{k['z']}": k for k in json.loads(run_cli("status", "--json").stdout)["links"]
    }
    assert links["r2:eth2--r3:eth1"]["state"] == "unknown"  # one side cannot be asked

    s2.start_sshd()
    second = run_cli("destroy", spec.lab)
    assert second.returncode == 0, second.stderr
    for server in pool:
        assert lab_processes(server, spec.lab) == []
        assert not server.holds_path(f"/root/.newtlab/labs/{spec.lab}")
    assert not (newtlab_home / "labs" / spec.lab).exists()
