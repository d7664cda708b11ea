"""Frames cross newtlink intact, in order and whole, in both directions, in every mode."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from newtlink_kit import MODES, Newtlink, StartBridge
from newtlink_traffic import Checker, Frames

pytestmark = pytest.mark.integration


def blast(sock: socket.socket, frames: Frames, count: int) -> None:
    for chunk in frames.batches(0, count):
        sock.sendall(chunk)


def exchange(bridge: Newtlink, count: int, link: int = 0) -> tuple[Checker, Checker]:
    """``count`` frames each way at once, in 1 MiB writes; what each side received."""
    a, z = bridge.connect("a", link), bridge.connect("z", link)
    bridge.wait_stats(lambda s: s["connected"], link)
    at_a, at_z = Checker(), Checker()
    workers = [
        threading.Thread(target=blast, args=(a, Frames(1), count)),
        threading.Thread(target=blast, args=(z, Frames(2), count)),
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


@pytest.mark.parametrize("mode", MODES)
def test_frames_arrive_intact_both_ways_under_load(start_bridge: StartBridge, mode: str) -> None:
    bridge = start_bridge(mode=mode)
    count = 100_000
    at_a, at_z = exchange(bridge, count)
    for checker in (at_a, at_z):
        assert checker.bad == []
        assert checker.sequences == list(range(count))
    stats = bridge.stats()
    assert stats["a_to_z_frames"] == stats["z_to_a_frames"] == count
    assert stats["a_to_z_bytes"] == at_z.bytes
    assert stats["z_to_a_bytes"] == at_a.bytes
    assert stats["a_to_z_dropped_frames"] == stats["z_to_a_dropped_frames"] == 0
    assert stats["sessions"] == 1


@pytest.mark.slow
def test_millions_of_frames(start_bridge: StartBridge) -> None:
    bridge = start_bridge()
    count = 2_000_000
    at_a, at_z = exchange(bridge, count)
    assert at_a.bad == at_z.bad == []
    assert at_a.sequences == at_z.sequences == list(range(count))
    stats = bridge.stats()
    assert stats["a_to_z_frames"] == stats["z_to_a_frames"] == count


@pytest.mark.parametrize("mode", MODES)
def test_frame_by_frame_sends_with_bursts_between(start_bridge: StartBridge, mode: str) -> None:
    """One send() per frame (as QEMU does) mixed with big bursts: both data paths, in turns."""
    bridge = start_bridge(mode=mode)
    a, z = bridge.connect("a"), bridge.connect("z")
    bridge.wait_stats(lambda s: s["connected"])
    frames = Frames(5, 60, 1518)
    at_z = Checker()
    receiver = threading.Thread(target=at_z.drain, args=(z, 60_000, 60))
    receiver.start()
    seq = 0
    for _ in range(3):
        for _ in range(10_000):
            a.sendall(frames.frame(seq))
            seq += 1
        for chunk in frames.batches(seq, 10_000):
            a.sendall(chunk)
        seq += 10_000
    receiver.join(90)
    assert at_z.bad == []
    assert at_z.sequences == list(range(60_000))
    a.close()
    z.close()


@pytest.mark.parametrize("mode", MODES)
def test_a_frame_is_forwarded_only_once_whole(start_bridge: StartBridge, mode: str) -> None:
    bridge = start_bridge(mode=mode)
    a, z = bridge.connect("a"), bridge.connect("z")
    bridge.wait_stats(lambda s: s["connected"])
    frame = Frames(6).frame(0, 5000)
    for cut in (2, 1000):  # inside the header, inside the body
        a.sendall(frame[:cut])
        z.settimeout(0.3)
        with pytest.raises(TimeoutError):
            z.recv(65536)  # nothing of an incomplete frame leaves the bridge
        a.sendall(frame[cut:])
        checker = Checker()
        checker.drain(z, 1, timeout=5)
        assert checker.sequences == [0] and checker.pending == 0
    a.close()
    z.close()


@pytest.mark.parametrize("mode", MODES)
def test_many_links_at_once(start_bridge: StartBridge, mode: str) -> None:
    """Links are independent: each carries its own stream, counted on its own."""
    links = 20
    bridge = start_bridge(links=links, mode=mode)
    for i in range(links):  # dial mode: every "VM" listens at once, as after a deploy
        bridge.plug("a", i)
        bridge.plug("z", i)
    pairs = [(bridge.connect("a", i), bridge.connect("z", i)) for i in range(links)]
    for i in range(links):
        bridge.wait_stats(lambda s: s["connected"], link=i)

    def send(i: int, a: socket.socket) -> None:
        for chunk in Frames(100 + i).batches(0, 200 + i):
            a.sendall(chunk)

    # Sent while the far ends drain: a Unix socket buffers less than a TCP connection.
    senders = [threading.Thread(target=send, args=(i, a)) for i, (a, _) in enumerate(pairs)]
    for sender in senders:
        sender.start()
    for i, (_, z) in enumerate(pairs):
        checker = Checker()
        checker.drain(z, 200 + i, timeout=20)
        assert checker.bad == [] and checker.sequences == list(range(200 + i))
    for sender in senders:
        sender.join(10)
    time.sleep(0.1)
    for i in range(links):
        stats = bridge.stats(i)
        assert stats["a_to_z_frames"] == 200 + i and stats["z_to_a_frames"] == 0
    for a, z in pairs:
        a.close()
        z.close()
