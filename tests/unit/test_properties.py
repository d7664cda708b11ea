"""Property tests: random valid topologies plan soundly; random bad JSON never crashes."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newtlab.errors import NewtlabError
from newtlab.lab import Lab
from newtlab.plan.ports import collect_ports
from specfactory import linked, write_specs

NAMES = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)


@st.composite
def topologies(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    switches = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))
    hosts = draw(st.lists(NAMES.map(lambda n: "h" + n), max_size=5, unique=True))
    hosts = [h for h in hosts if h not in switches]
    next_port = dict.fromkeys(switches, 0)
    next_eth = dict.fromkeys(hosts, 0)
    pairs = []
    for _ in range(draw(st.integers(0, 12))):
        a = draw(st.sampled_from(switches))
        z = draw(st.sampled_from(switches + hosts))
        if z == a:
            continue
        a_if = f"Ethernet{next_port[a]}"
        next_port[a] += draw(st.integers(1, 3))
        if z in hosts:
            z_if = f"eth{next_eth[z]}"
            next_eth[z] += draw(st.integers(1, 2))
        else:
            z_if = f"Ethernet{next_port[z]}"
            next_port[z] += 1
        pairs.append((f"{a}:{a_if}", f"{z}:{z_if}"))
    devices = linked(*pairs)
    for name in switches + hosts:
        devices.setdefault(name, {})
    groups = draw(
        st.lists(st.sampled_from(["", "s1", "s2"]), min_size=len(hosts), max_size=len(hosts))
    )
    profiles: dict[str, dict[str, Any]] = {s: {"platform": "sw"} for s in switches}
    use_pool = draw(st.booleans())
    for host, group in zip(hosts, groups, strict=True):
        profiles[host] = {"platform": "host", **({"vm_host": group} if use_pool and group else {})}
    newtlab: dict[str, Any] = {}
    if use_pool:
        newtlab["servers"] = [
            {"name": "s1", "address": "10.9.0.1"},
            {"name": "s2", "address": "10.9.0.2"},
        ]
    return devices, profiles, newtlab


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topologies())
def test_random_topologies_plan_soundly(
    topo: tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]],
) -> None:
    devices, profiles, newtlab = topo
    with tempfile.TemporaryDirectory() as tmp:
        spec = write_specs(Path(tmp) / "lab", devices, profiles=profiles, newtlab=newtlab)
        plan = Lab.load(spec).plan
    # Ports are unique per host.
    seen: set[tuple[str, int]] = set()
    for use in collect_ports(plan):
        assert (use.host, use.port) not in seen, use
        seen.add((use.host, use.port))
    # MACs: one per switch, one per NIC elsewhere, never shared across nodes.
    owner: dict[str, str] = {}
    for node in plan.nodes:
        for nic in node.nics:
            assert owner.setdefault(nic.mac, node.name) == node.name
        if node.device_type != "switch":
            assert len({n.mac for n in node.nics}) == len(node.nics)
    # Every link endpoint is a NIC of its VM listening on its own Unix socket.
    for link in plan.links:
        for vm, nic, end in ((link.a_vm, link.a_nic, link.a), (link.z_vm, link.z_nic, link.z)):
            node = plan.node(vm)
            assert node.nics[nic].listen == f"qemu/{vm}.nic{nic}"
            assert f"{node.nics[nic].device}:{node.nics[nic].interface}" == end
    # NIC lists are contiguous from 0.
    for node in plan.nodes:
        assert [n.index for n in node.nics] == list(range(len(node.nics)))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "devices",
        "links",
        "newtlab",
        "interfaces",
        "link",
        "a",
        "z",
        "platforms",
        "platform",
        "vm_image",
        "vm_memory",
        "servers",
        "vm_host",
        "vm_interface_map",
    ]
)


@st.composite
def malformed_documents(draw: st.DrawFn) -> str:
    value = draw(
        st.dictionaries(
            KEYS, JSON_VALUES | st.dictionaries(KEYS | NAMES, JSON_VALUES, max_size=3), max_size=4
        )
    )
    text = json.dumps(value)
    if draw(st.booleans()) and text:
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["", "}", ",", "\x00", '"', "ä"]))
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    malformed_documents(), st.sampled_from(["topology.json", "platforms.json", "profiles/a.json"])
)
def test_malformed_json_never_crashes(document: str, target: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec = write_specs(Path(tmp) / "lab", linked(("a:Ethernet0", "b:Ethernet0")))
        (spec / target).write_text(document)
        try:
            Lab.load(spec)
        except NewtlabError as exc:
            assert str(exc)


def test_cli_reports_bad_json_without_traceback(tmp_path: Path) -> None:
    spec = write_specs(tmp_path / "lab", {"a": {}})
    (spec / "topology.json").write_text('{"devices": {"a": {"interfaces": []}}')
    result = subprocess.run(
        [sys.executable, "-m", "newtlab", "plan", "-S", str(spec)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "topology.json" in result.stderr and "invalid JSON" in result.stderr
