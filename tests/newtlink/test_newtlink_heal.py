"""The bridge dials listening VMs and redials; under its supervisor it survives its own death."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from newtlink_kit import (
    DIALLING,
    Newtlink,
    StartBridge,
    argv_for,
    free_ports,
    process_alive,
    write_config,
)
from newtlink_traffic import Checker, Frames, Receiver, one_frame_each_way

pytestmark = pytest.mark.integration


def test_dialling_side_connects_soon_after_its_vm_listens(start_bridge: StartBridge) -> None:
    bridge = start_bridge(mode="dial")
    time.sleep(1.5)  # no "VM" listens yet: every dial is refused
    stats = bridge.stats()
    assert not stats["a_connected"] and stats["a_dial_failures"] >= 3
    assert stats["a_dial"] == f"127.0.0.1:{bridge.port('a')}" and stats["a_bind"] == ""
    refusals = [line for line in bridge.stderr().splitlines() if "a0:eth1 (a side" in line]
    assert len(refusals) == 1 and "Connection refused; retrying" in refusals[0]  # said once
    started = time.monotonic()
    a = bridge.connect("a")  # the "VM" starts listening: the bridge's backoff is at most 1 s
    assert time.monotonic() - started < 1.6
    a.close()


class Talker:
    """One end of a link as a VM would be: sends frames and checks what it receives."""

    def __init__(self, sock: socket.socket, seed: int) -> None:
        self.sock = sock
        self.frames = Frames(seed)
        self.sent = 0
        self.receiver = Receiver(sock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()

    def _send(self) -> None:
        try:
            while not self._stop.is_set():
                for chunk in self.frames.batches(self.sent, 50, batch_bytes=64 << 10):
                    self.sock.sendall(chunk)
                self.sent += 50
                time.sleep(0.002)
        except OSError:
            pass  # the bridge went away under us

    def stop(self) -> Checker:
        self._stop.set()
        self._thread.join(10)
        checker = self.receiver.stop()
        self.sock.close()
        return checker


@pytest.mark.parametrize("mode", DIALLING)  # "VMs" on TCP, and on Unix sockets as newtlab's
def test_killed_bridge_is_restarted_and_redials_its_vms(
    start_bridge: StartBridge, mode: str
) -> None:
    """kill -9 of the bridge mid-traffic, three times: each time it is back within a second,
    redials both "VMs", and each new connection carries whole frames from a boundary on."""
    bridge = start_bridge(mode=mode, supervise=True)
    supervisor = bridge.proc.pid
    first = bridge.doc()
    assert first["pid"] != supervisor and first["restarts"] == 0
    relay, started = first["pid"], first["started"]
    for round_ in range(1, 4):
        a, z = Talker(bridge.connect("a"), round_), Talker(bridge.connect("z"), 10 + round_)
        time.sleep(0.3)
        os.kill(relay, signal.SIGKILL)  # mid-traffic
        killed = time.monotonic()
        a2, z2 = bridge.connect("a"), bridge.connect("z")  # the new bridge dials both again
        assert time.monotonic() - killed < 2.0
        for talker in (a, z):
            old = talker.stop()
            assert old.bad == [] and old.frames > 0  # whole frames until the bridge died
        assert bridge.wait_stats(lambda s: s["connected"])["connected"]
        doc = bridge.doc()
        assert doc["restarts"] == round_ and doc["pid"] != relay and doc["started"] > started
        relay, started = doc["pid"], doc["started"]
        frames = Frames(99)
        for seq in range(20):
            a2.sendall(frames.frame(seq))
        at_z = Checker()
        at_z.drain(z2, 20, timeout=5)
        assert at_z.bad == [] and at_z.sequences == list(range(20))
        a2.close()
        z2.close()
        bridge.wait_dropped("z")
    assert process_alive(supervisor)
    log = bridge.stderr()
    assert log.count("killed by SIGKILL; restarting") == 3 and "(restart 3)" in log


def test_supervisor_stops_its_bridge_on_sigterm(start_bridge: StartBridge) -> None:
    bridge = start_bridge(mode="dial", supervise=True)
    relay = bridge.doc()["pid"]
    assert bridge.terminate(signal.SIGTERM) == 0
    deadline = time.monotonic() + 5
    while process_alive(relay) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(relay)
    assert not Path(bridge.unix).exists()
    assert "restarting" not in bridge.stderr()


def test_supervised_bridge_that_cannot_start_says_why_and_exits_2(tmp_path: Path) -> None:
    ports = free_ports(2)
    holder = socket.socket()
    holder.bind(("127.0.0.1", ports[1]))
    holder.listen(1)
    config = {
        "links": [{"a": "r1:eth1", "z": "r2:eth1", "a_dial": f"127.0.0.1:{ports[0]}",
                   "z_port": ports[1]}],
        "stats_unix": str(tmp_path / "s.sock"),
    }  # fmt: skip
    try:
        result = subprocess.run(
            argv_for(write_config(tmp_path, config), supervise=True),
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        holder.close()
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"newtlink: cannot listen on 127.0.0.1:{ports[1]} (link r1:eth1 -- r2:eth1, z side): "
        "Address already in use"
    ]


def test_listening_and_dialling_sides_mix(start_bridge: StartBridge, tmp_path: Path) -> None:
    """A link between two servers: this bridge dials its own VM and listens for the far bridge."""
    vm_port, far_port = free_ports(2)
    directory = tmp_path / "mixed"
    directory.mkdir()
    config = {
        "lab": "nltest",
        "links": [{"a": "r1:eth1", "z": "r2:eth1", "a_dial": f"127.0.0.1:{vm_port}",
                   "z_port": far_port, "z_bind": "127.0.0.1", "z_allow": ["127.0.0.1"]}],
        "stats_unix": str(directory / "newtlink.sock"),
    }  # fmt: skip
    bridge = Newtlink(directory, config, argv_for(write_config(directory, config)), mode="dial")
    try:
        assert bridge.ready_line() == f"READY {bridge.proc.pid}\n", bridge.stderr()
        vm = bridge.connect("a")  # accepted from the bridge's dial
        far = socket.create_connection(("127.0.0.1", far_port), timeout=5)
        stats = bridge.wait_stats(lambda s: s["connected"])
        assert stats["a_dial"] and stats["z_bind"] == "127.0.0.1" and stats["z_dial"] == ""
        assert one_frame_each_way(far, vm) == ([0], [1])
        vm.close()
        far.close()
    finally:
        bridge.kill()
