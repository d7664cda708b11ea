"""A VM restart must not break its neighbour: the survivor stays connected and frame-aligned."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest
from newtlink_kit import MODES, Newtlink, StartBridge
from newtlink_traffic import Checker, Frames, Receiver, rst_close

pytestmark = pytest.mark.integration


class Survivor:
    """Side A: keeps sending (bursts and single frames) and checking what it receives."""

    def __init__(self, bridge: Newtlink) -> None:
        self.sock = bridge.connect("a")
        self.receiver = Receiver(self.sock)
        self.frames = Frames(7)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()

    def _send(self) -> None:
        while not self._stop.is_set():
            # ~2 MiB in 1 MiB writes (big reads at the bridge), then frame by frame.
            for chunk in self.frames.batches(self.sent, 400):
                self.sock.sendall(chunk)
            self.sent += 400
            for _ in range(50):
                self.sock.sendall(self.frames.frame(self.sent))
                self.sent += 1
            time.sleep(0.005)

    def stop(self) -> Checker:
        self._stop.set()
        self._thread.join(30)
        time.sleep(0.3)  # let what is in flight arrive
        return self.receiver.stop()


def die_mid_frame(sock: socket.socket, frame: bytes, cut: int, reset: bool) -> None:
    sock.sendall(frame[:cut])
    if reset:
        rst_close(sock)
    else:
        sock.close()


@pytest.mark.parametrize("mode", MODES)
def test_side_dies_mid_frame_and_returns_many_times(start_bridge: StartBridge, mode: str) -> None:
    """Z dies mid-frame (FIN or RST) and comes back, again and again, while A keeps going.

    In dial mode Z is a listening VM that restarts: the bridge redials it.
    """
    bridge = start_bridge(mode=mode)
    survivor = Survivor(bridge)
    rng = random.Random(11)
    z_frames, z_sent, rounds = Frames(8), 0, 30
    try:
        for round_ in range(rounds):
            z = bridge.connect("z")
            bridge.wait_stats(lambda s: s["z_connected"])
            at_z = Checker()
            at_z.drain(z, 20, timeout=10)
            # The new Z gets A's frames from a frame boundary on.
            assert at_z.bad == [] and at_z.frames >= 20, at_z.bad
            if round_ % 3 == 0:  # a burst: the bridge reads many frames at once
                burst = 300
                for chunk in z_frames.batches(z_sent, burst):
                    z.sendall(chunk)
            else:
                burst = rng.randint(1, 5)
                for seq in range(z_sent, z_sent + burst):
                    z.sendall(z_frames.frame(seq))
            z_sent += burst
            sent = z_sent
            stats = bridge.wait_stats(lambda s: s["z_to_a_frames"] >= sent)  # noqa: B023
            assert stats["z_to_a_frames"] == z_sent
            partial = z_frames.frame(10**9 + round_)  # never whole, so never seen by A
            cut = rng.choice([1, 2, 3, rng.randint(4, len(partial) - 1)])
            if round_ == rounds - 1:
                bridge.unplug("z")  # the last death: no redial, so the counts below are exact
            die_mid_frame(z, partial, cut, reset=bool(round_ % 2))
            bridge.wait_dropped("z")
    finally:
        at_a = survivor.stop()
    stats = bridge.stats()
    assert at_a.bad == []  # every frame A received parses and checks
    assert at_a.sequences == list(range(z_sent))  # all of Z's whole frames, in order, no torn one
    assert not at_a.eof and survivor.receiver.error is None
    assert stats["a_connected"] and stats["a_connects"] == 1  # the survivor was never dropped
    assert stats["z_connects"] == rounds and stats["sessions"] == rounds
    assert stats["z_torn_frames"] == rounds
    assert stats["a_to_z_dropped_frames"] > 0  # A's frames while Z was away: discarded
    survivor.sock.close()


@pytest.mark.parametrize("mode", MODES)
def test_receiver_dies_with_a_burst_in_flight(start_bridge: StartBridge, mode: str) -> None:
    """Z stops reading while A floods it, then is reset: the bridge's send fails mid-chunk."""
    bridge = start_bridge(mode=mode)
    survivor = Survivor(bridge)
    try:
        for _ in range(8):
            z = bridge.connect("z")
            Checker().drain(z, 10, timeout=10)
            time.sleep(0.2)  # not reading: the bridge blocks sending A's burst to Z
            rst_close(z)
            bridge.wait_dropped("z")
        z = bridge.connect("z")
        at_z = Checker()
        at_z.drain(z, 2000, timeout=20)
        assert at_z.bad == [] and at_z.frames >= 2000
        stats = bridge.stats()
        z.close()
    finally:
        at_a = survivor.stop()
    assert at_a.bad == [] and not at_a.eof
    assert stats["a_connected"] and stats["a_connects"] == 1 and stats["z_connects"] == 9


@pytest.mark.parametrize("mode", MODES)
def test_survivor_alone_keeps_its_connection(start_bridge: StartBridge, mode: str) -> None:
    """With no peer, a side's frames are read and dropped; its connection is never closed."""
    bridge = start_bridge(mode=mode)
    a = bridge.connect("a")
    frames = Frames(9)
    a.sendall(b"".join(frames.frame(seq) for seq in range(50)))
    stats = bridge.wait_stats(lambda s: s["a_to_z_dropped_frames"] == 50)
    assert stats["a_to_z_dropped_frames"] == 50 and stats["a_to_z_frames"] == 0
    a.settimeout(0.3)
    with pytest.raises(TimeoutError):
        a.recv(1)  # no EOF: still connected
    z = bridge.connect("z")
    bridge.wait_stats(lambda s: s["connected"])
    a.sendall(frames.frame(50))
    at_z = Checker()
    at_z.drain(z, 1, timeout=5)
    assert at_z.sequences == [50]  # the stream resumes at the next whole frame
    a.close()
    z.close()
