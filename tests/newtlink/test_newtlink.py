"""newtlink with synthetic QEMU-framed endpoints (not QEMU itself)."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bridgekit import Bridge, free_ports, launch
from framing import HEAD, META, FrameReader, batches, frames

pytestmark = pytest.mark.integration


def send_all(sock: socket.socket, seed: int, count: int) -> None:
    for chunk in batches(seed, count):
        sock.sendall(chunk)


def exchange(bridge: Bridge, count: int) -> tuple[FrameReader, FrameReader]:
    """Send ``count`` frames each way at once; what each side received."""
    a, z = bridge.connect(0, "a"), bridge.connect(0, "z")
    bridge.wait_stats(lambda s: s["connected"])
    at_a, at_z = FrameReader(), FrameReader()
    workers = [
        threading.Thread(target=send_all, args=(a, 1, count)),
        threading.Thread(target=send_all, args=(z, 2, count)),
        threading.Thread(target=at_z.drain, args=(z, count, 120)),
        threading.Thread(target=at_a.drain, args=(a, count, 120)),
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    a.close()
    z.close()
    return at_a, at_z


def test_frames_arrive_intact_both_ways(bridge: Callable[..., Bridge]) -> None:
    b = bridge()
    count = 100_000
    at_a, at_z = exchange(b, count)
    for reader in (at_a, at_z):
        assert reader.bad == 0
        assert reader.sequences == list(range(count))
    stats = b.stats()
    assert stats["a_to_z_frames"] == stats["z_to_a_frames"] == count
    assert stats["a_to_z_bytes"] == at_z.bytes and stats["z_to_a_bytes"] == at_a.bytes
    assert stats["sessions"] == 1 and stats["a_dropped_frames"] == stats["z_dropped_frames"] == 0


@pytest.mark.slow
def test_millions_of_frames(bridge: Callable[..., Bridge]) -> None:
    b = bridge()
    count = 2_000_000
    at_a, at_z = exchange(b, count)
    assert at_a.bad == at_z.bad == 0
    assert at_a.sequences == at_z.sequences == list(range(count))


def rst_close(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_side_killed_mid_frame_never_tears_the_survivor(bridge: Callable[..., Bridge]) -> None:
    """Z dies mid-frame and comes back 40 times while A keeps sending and receiving."""
    b = bridge()
    a = b.connect(0, "a")
    at_a = FrameReader()
    stop = threading.Event()

    def a_sender() -> None:
        seq = 0
        while not stop.is_set():
            for chunk in batches(7, 200, batch=20, start=seq):
                a.sendall(chunk)
            seq += 200
            time.sleep(0.002)

    def a_receiver() -> None:
        a.settimeout(0.2)
        while not stop.is_set():
            try:
                data = a.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                return
            at_a.feed(data)

    threads = [threading.Thread(target=a_sender), threading.Thread(target=a_receiver)]
    for t in threads:
        t.start()
    sent_from_z = 0
    try:
        for round_ in range(40):
            z = b.connect(0, "z")
            before = b.wait_stats(lambda s: s["z_connected"])["z_to_a_frames"]
            at_z = FrameReader()
            at_z.drain(z, 50, timeout=10)  # A's frames reach the new Z from a frame boundary
            assert at_z.bad == 0 and at_z.frames >= 50
            whole = list(frames(100 + round_, 5, start=sent_from_z))
            z.sendall(b"".join(whole))
            sent_from_z += 5
            b.wait_stats(lambda s, n=before: s["z_to_a_frames"] >= n + 5)
            partial = next(frames(999, 1))
            z.sendall(partial[: len(partial) // 2])  # then die mid-frame
            if round_ % 2:
                rst_close(z)
            else:
                z.close()
            b.wait_stats(lambda s: not s["z_connected"])
    finally:
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(timeout=10)
    stats = b.stats()
    assert stats["a_connected"] and stats["a_accepts"] == 1  # the survivor was never dropped
    assert stats["z_accepts"] == 40
    assert at_a.bad == 0  # every frame A received parses and checks
    assert at_a.sequences == list(range(sent_from_z))  # all of Z's whole frames, no torn one
    assert stats["a_dropped_frames"] > 0  # A's frames while Z was away were discarded
    a.close()


def test_second_connection_cannot_hijack(bridge: Callable[..., Bridge]) -> None:
    b = bridge()
    a, z = b.connect(0, "a"), b.connect(0, "z")
    b.wait_stats(lambda s: s["connected"])
    intruder = b.connect(0, "z")
    intruder.settimeout(5)
    assert intruder.recv(10) == b""  # closed at once
    a.sendall(next(frames(3, 1)))
    reader = FrameReader()
    reader.drain(z, 1, timeout=5)
    assert reader.sequences == [0]
    stats = b.wait_stats(lambda s: s["z_refused"] == 1)
    assert stats["z_refused"] == 1 and stats["z_accepts"] == 1
    for s in (a, z, intruder):
        s.close()


def test_allow_list_refuses_other_peers(tmp_path: Path, bridge: Callable[..., Bridge]) -> None:
    b = bridge()
    b.proc.kill()
    b.proc.wait()
    ports = free_ports(2)
    config = {
        "lab": "t",
        "stats_unix": str(tmp_path / "s.sock"),
        "links": [
            {
                "a": "x:e1",
                "z": "y:e1",
                "a_port": ports[0],
                "z_port": ports[1],
                "a_bind": "0.0.0.0",
                "z_bind": "127.0.0.1",
                "a_allow": ["192.0.2.7"],
                "z_allow": [],
            }
        ],
    }
    proc = launch(tmp_path, config)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("READY")
        stranger = socket.create_connection(("127.0.0.1", ports[0]), timeout=5)
        assert stranger.recv(10) == b""
        allowed = socket.create_connection(("127.0.0.1", ports[1]), timeout=5)
        from newtlab.runtime.newtlink import query_stats

        time.sleep(0.2)
        stats = query_stats(config["stats_unix"])["links"][0]
        assert stats["a_refused"] == 1 and not stats["a_connected"] and stats["z_connected"]
        stranger.close()
        allowed.close()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close() if proc.stdout else None
        proc.stderr.close() if proc.stderr else None


def test_port_in_use_fails_cleanly(tmp_path: Path) -> None:
    ports = free_ports(4)
    holder = socket.socket()
    holder.bind(("127.0.0.1", ports[3]))
    holder.listen(1)
    config = {
        "lab": "t",
        "links": [
            {"a": "r1:eth1", "z": "r2:eth1", "a_port": ports[0], "z_port": ports[1]},
            {"a": "r2:eth2", "z": "r3:eth1", "a_port": ports[2], "z_port": ports[3]},
        ],
    }
    proc = launch(tmp_path, config)
    out, err = proc.communicate(timeout=10)
    holder.close()
    assert proc.returncode == 2 and out == ""
    assert f"cannot listen on 127.0.0.1:{ports[3]} (link r2:eth2 -- r3:eth1, z side)" in err
    assert "Traceback" not in err
    for port in ports[:3]:  # everything it had opened was closed again
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("{nope", "Expecting property name"),
        (json.dumps({"links": [{"a": "x", "z": "y", "a_port": 1}]}), "links[0]: missing 'z_port'"),
        (
            json.dumps({"links": [{"a": "x", "z": "y", "a_port": "1", "z_port": 2}]}),
            "links[0].a_port: expected int",
        ),
        (json.dumps([]), "expected a JSON object"),
    ],
)
def test_bad_config_fails_cleanly(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "bridge.json"
    if content is not None:
        path.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "newtlab.runtime.newtlink", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_sigterm_stops_cleanly(bridge: Callable[..., Bridge]) -> None:
    b = bridge()
    a, z = b.connect(0, "a"), b.connect(0, "z")
    b.wait_stats(lambda s: s["connected"])
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(timeout=5) == 0
    assert not Path(b.unix).exists()
    a.settimeout(5)
    assert a.recv(10) == b""  # peers see the bridge go
    a.close()
    z.close()


def test_stats_over_tcp_and_per_link(bridge: Callable[..., Bridge]) -> None:
    port = free_ports(1)[0]
    b = bridge(links=3, stats_addr=f"127.0.0.1:{port}")
    from newtlab.runtime.newtlink import query_stats

    a = b.connect(1, "a")
    b.wait_stats(lambda s: s["a_connected"], link=1)
    a.sendall(b"".join(frames(5, 10)))
    stats = b.wait_stats(lambda s: s["a_dropped_frames"] == 10, link=1)
    assert stats["a_dropped_frames"] == 10 and stats["a_to_z_frames"] == 0  # Z away: dropped
    over_tcp = query_stats(f"127.0.0.1:{port}")
    assert [link["a"] for link in over_tcp["links"]] == ["a0:eth1", "a1:eth1", "a2:eth1"]
    assert over_tcp["links"][1]["a_dropped_bytes"] == sum(len(f) for f in frames(5, 10))
    a.close()


def test_pcap_capture(tmp_path: Path, bridge: Callable[..., Bridge]) -> None:
    capture = tmp_path / "link.pcap"
    b = bridge(pcap={"a0:eth1--z0:eth1": str(capture)})
    a, z = b.connect(0, "a"), b.connect(0, "z")
    b.wait_stats(lambda s: s["connected"])
    sent = list(frames(9, 25))
    a.sendall(b"".join(sent))
    FrameReader().drain(z, 25, timeout=5)
    b.proc.send_signal(signal.SIGTERM)
    b.proc.wait(timeout=5)
    data = capture.read_bytes()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    pos, lengths = 24, []
    while pos < len(data):
        _, _, incl, _ = struct.unpack_from("<IIII", data, pos)
        lengths.append(incl)
        pos += 16 + incl
    assert lengths == [HEAD.unpack_from(f)[0] for f in sent]
    assert META.size < min(lengths)
    a.close()
    z.close()
