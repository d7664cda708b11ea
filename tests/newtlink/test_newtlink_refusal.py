"""Exactly one peer per side, and only peers from the allow list."""

from __future__ import annotations

import pytest
from newtlink_kit import StartBridge
from newtlink_traffic import Checker, Frames, one_frame_each_way

pytestmark = pytest.mark.integration


def test_second_connection_cannot_hijack_a_side(start_bridge: StartBridge) -> None:
    bridge = start_bridge()
    a, z = bridge.connect("a"), bridge.connect("z")
    bridge.wait_stats(lambda s: s["connected"])
    intruders = [bridge.connect("z"), bridge.connect("a")]
    for intruder in intruders:
        intruder.settimeout(5)
        assert intruder.recv(10) == b""  # accepted, then closed at once
        intruder.close()
    assert one_frame_each_way(a, z) == ([0], [1])  # the original pair still talks
    stats = bridge.stats()
    assert stats["z_refused_busy"] == 1 and stats["a_refused_busy"] == 1
    assert stats["z_connects"] == stats["a_connects"] == 1 and stats["sessions"] == 1
    assert "side already connected" in bridge.stderr()
    a.close()
    z.close()


def test_allow_list_admits_only_listed_peers(start_bridge: StartBridge) -> None:
    """All of 127/8 is loopback here: 127.0.0.2 is the listed peer, 127.0.0.1 a stranger."""
    bridge = start_bridge(link_extra={"a_bind": "0.0.0.0", "a_allow": ["127.0.0.2"]})
    stranger = bridge.connect("a", source="127.0.0.1")
    stranger.settimeout(5)
    assert stranger.recv(10) == b""
    stranger.close()
    stats = bridge.wait_stats(lambda s: s["a_refused_allow"] == 1)
    assert stats["a_refused_allow"] == 1 and not stats["a_connected"]
    listed = bridge.connect("a", source="127.0.0.2")
    z = bridge.connect("z", source="127.0.0.1")  # no list on Z: anyone
    stats = bridge.wait_stats(lambda s: s["connected"])
    assert stats["connected"] and stats["a_peer"].startswith("127.0.0.2:")
    listed.sendall(Frames(4).frame(0))
    checker = Checker()
    checker.drain(z, 1, timeout=5)
    assert checker.sequences == [0]
    assert "not in the allow list" in bridge.stderr()
    listed.close()
    z.close()
