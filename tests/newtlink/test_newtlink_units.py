"""The pure parts: the frame walk and the config parser."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newtlab.newtlink.config import ConfigError, parse
from newtlab.newtlink.frames import MAX_FRAME, CorruptStream, walk

HEAD = struct.Struct(">I")


def reference_walk(buf: bytes, end: int) -> tuple[int, int]:
    pos = frames = 0
    while end - pos >= 4:
        stop = pos + 4 + HEAD.unpack_from(buf, pos)[0]
        if stop > end:
            break
        pos, frames = stop, frames + 1
    return pos, frames


# Runs of equal lengths (what the fast path looks for) mixed with odd ones.
lengths = st.sampled_from([0, 1, 60, 64, 1500, 9000]) | st.integers(0, 300)
runs = st.lists(st.tuples(lengths, st.integers(1, 70)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(runs=runs, fill=st.integers(0, 255), cut=st.floats(0, 1))
def test_walk_matches_a_frame_by_frame_walk(
    runs: list[tuple[int, int]], fill: int, cut: float
) -> None:
    data = b"".join((HEAD.pack(length) + bytes([fill]) * length) * count for length, count in runs)
    end = int(len(data) * cut)
    assert walk(data, end) == reference_walk(data, end)
    assert walk(bytearray(data), len(data)) == reference_walk(data, len(data))


def test_walk_stops_at_a_partial_header_or_body() -> None:
    frame = HEAD.pack(10) + bytes(10)
    assert walk(frame * 3 + frame[:2], 44) == (42, 3)
    assert walk(frame * 3 + frame[:9], 51) == (42, 3)


def test_walk_rejects_an_impossible_length() -> None:
    data = HEAD.pack(64) + bytes(64) + HEAD.pack(MAX_FRAME + 1)
    with pytest.raises(CorruptStream):
        walk(data, len(data))


def link(**extra: Any) -> dict[str, Any]:
    return {"a": "r1:e1", "z": "r2:e1", "a_port": 1000, "z_port": 1001, **extra}


def test_config_defaults_and_normalized_allow_lists() -> None:
    config = parse(
        {
            "links": [link(a_bind="0.0.0.0", a_allow=["::ffff:10.0.0.2", "10.0.0.3"])],
            "stats_addr": ":19999",
            "pcap": {"r1:e1--r2:e1": "/tmp/x.pcap"},
        }
    )
    (only,) = config.links
    assert config.lab == "" and config.stats_unix == ""
    assert config.stats_addr == ("0.0.0.0", 19999)
    assert only.a.allow == frozenset({"10.0.0.2", "10.0.0.3"}) and only.z.allow == frozenset()
    assert only.z.bind == "127.0.0.1" and only.pcap == "/tmp/x.pcap"
    assert only.name == "r1:e1--r2:e1"


def test_a_side_dials_or_listens() -> None:
    (only,) = parse({"links": [link(a_port=None, a_dial="[::1]:7000")]}).links
    assert (only.a.dial, only.a.port, only.a.dial_address) == ("::1", 7000, "[::1]:7000")
    assert only.a.where == "dial [::1]:7000" and only.z.where == "listen 127.0.0.1:1001"
    assert only.z.dial == "" and only.z.dial_address == ""
    (unix,) = parse({"links": [link(a_port=None, a_dial="unix:qemu/r1.nic1")]}).links
    assert (unix.a.unix, unix.a.dials, unix.a.where) == (
        "qemu/r1.nic1",
        True,
        "dial unix:qemu/r1.nic1",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"links": [link(a="")]}, "links[0].a: empty name"),
        ({"links": [link(z_port=True)]}, "links[0].z_port: expected int"),
        ({"links": [link(a_allow="10.0.0.1")]}, "links[0].a_allow: expected list"),
        ({"links": ["x"]}, "links[0]: expected an object"),
        ({"links": [], "stats_addr": "h:0"}, "stats_addr: expected host:port"),
        ({"links": [link()], "pcap": {"r1:e1--r2:e1": ""}}, "expected a file path"),
        ({"links": [link(a_dial="127.0.0.1:5")]}, "links[0]: a_dial and a_port both given"),
        ({"links": [link(a_port=None, a_dial=":5")]}, "links[0].a_dial: ':5' names no host"),
        ({"links": [link(z_port=None, z_dial="h:x")]}, "links[0].z_dial: expected host:port"),
        (
            {"links": [link(a_port=None, a_dial="unix:")]},
            "links[0].a_dial: 'unix:' is not a Unix socket path",
        ),
        (
            {"links": [link(a_port=None, a_dial="h:1", a_source="h")]},
            "links[0].a_source: 'h' is not an IP address",
        ),
    ],
)
def test_config_errors_name_the_place(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(data)
