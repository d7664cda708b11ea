"""Counters match what was sent; the same document on the Unix socket and on TCP; pcap."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from newtlink_kit import MODES, StartBridge, free_ports
from newtlink_traffic import Checker, Frames

from newtlab.newtlink import query_stats

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", MODES)
def test_counters_match_the_traffic(start_bridge: StartBridge, mode: str) -> None:
    (stats_port,) = free_ports(1)
    bridge = start_bridge(mode=mode, stats_addr=f"127.0.0.1:{stats_port}")
    frames = Frames(21)
    t0 = time.time()

    a = bridge.connect("a")
    alone = [frames.frame(seq) for seq in range(10)]
    a.sendall(b"".join(alone))  # Z is away: dropped
    stats = bridge.wait_stats(lambda s: s["a_to_z_dropped_frames"] == 10)
    assert stats["a_to_z_dropped_bytes"] == sum(map(len, alone))
    assert stats["a_connected"] and not stats["connected"] and stats["sessions"] == 0

    z = bridge.connect("z")
    bridge.wait_stats(lambda s: s["connected"])
    a_to_z = [frames.frame(seq) for seq in range(10, 30)]
    z_to_a = [frames.frame(seq) for seq in range(100, 105)]
    a.sendall(b"".join(a_to_z))
    for frame in z_to_a:
        z.sendall(frame)
    Checker().drain(z, 20, timeout=5)
    Checker().drain(a, 5, timeout=5)
    stats = bridge.wait_stats(lambda s: s["z_to_a_frames"] == 5 and s["a_to_z_frames"] == 20)
    assert stats["a_to_z_bytes"] == sum(map(len, a_to_z))
    assert stats["z_to_a_bytes"] == sum(map(len, z_to_a))
    assert stats["a_to_z_frames"] == 20 and stats["z_to_a_frames"] == 5
    assert stats["sessions"] == 1 and stats["a_connects"] == stats["z_connects"] == 1
    assert t0 <= stats["a_last_activity"] <= time.time()
    assert stats["last_activity"] == max(stats["a_last_activity"], stats["z_last_activity"])

    bridge.unplug("z")  # dial mode: Z stays away after it dies
    z.sendall(frames.frame(200)[:100])  # Z dies 100 bytes into a frame
    z.close()
    stats = bridge.wait_dropped("z")
    assert stats["z_torn_bytes"] == 100 and stats["z_torn_frames"] == 1
    assert stats["z_to_a_frames"] == 5 and not stats["connected"] and stats["a_connected"]

    z = bridge.connect("z")
    stats = bridge.wait_stats(lambda s: s["connected"])
    assert stats["sessions"] == 2 and stats["z_connects"] == 2 and stats["a_connects"] == 1

    over_tcp = query_stats(f"127.0.0.1:{stats_port}")
    over_unix = query_stats(bridge.unix)
    for doc in (over_tcp, over_unix):
        assert doc["schema"] == 2 and doc["lab"] == "nltest" and doc["pid"] == bridge.proc.pid
        assert doc["restarts"] == 0
    assert over_tcp["links"][0]["a_to_z_bytes"] == over_unix["links"][0]["a_to_z_bytes"]
    assert {"a", "z", "a_port", "z_port", "a_to_z_bytes", "z_to_a_bytes"} <= set(stats)
    a.close()
    z.close()


def test_query_stats_of_nothing_raises_oserror(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    with pytest.raises(OSError):
        query_stats(f"127.0.0.1:{port}", timeout=2)
    with pytest.raises(OSError):
        query_stats(str(tmp_path / "none.sock"), timeout=2)
    with pytest.raises(ValueError):
        query_stats("not-an-address")


def read_pcap(path: Path) -> list[bytes]:
    data = path.read_bytes()
    magic, major, minor, _, _, _, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    pos, records = 24, []
    while pos < len(data):
        _, _, captured, original = struct.unpack_from("<IIII", data, pos)
        assert captured == original
        records.append(data[pos + 16 : pos + 16 + captured])
        pos += 16 + captured
    return records


def test_capture_writes_every_forwarded_frame(tmp_path: Path, start_bridge: StartBridge) -> None:
    capture = tmp_path / "link.pcap"
    bridge = start_bridge(pcap={"a0:eth1--z0:eth1": str(capture)})
    assert bridge.stats()["pcap"] == str(capture)
    a, z = bridge.connect("a"), bridge.connect("z")
    bridge.wait_stats(lambda s: s["connected"])
    frames = Frames(22)
    a_to_z = [frames.frame(seq) for seq in range(600)]  # ~2.7 MB: several reads
    a.sendall(b"".join(a_to_z))
    Checker().drain(z, 600, timeout=10)
    z_to_a = frames.frame(1000)
    z.sendall(z_to_a)
    Checker().drain(a, 1, timeout=5)
    stats = bridge.wait_stats(lambda s: s["z_to_a_frames"] == 1)
    assert stats["a_to_z_frames"] == 600
    assert bridge.terminate() == 0
    assert read_pcap(capture) == [f[4:] for f in [*a_to_z, z_to_a]]
    a.close()
    z.close()
