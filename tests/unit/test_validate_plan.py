"""Declared tests (newtlab.validate): parsed, checked and rendered for each node at plan time;
every bad test a spec error naming the file, the test and the field, all at once."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from newtlab.errors import SpecError, UsageError
from newtlab.lab import Lab
from specfactory import run_cli

EXAMPLES = Path(__file__).parents[2] / "examples"


def with_tests(tmp_path: Path, example: str, tests: list[dict[str, Any]]) -> Path:
    """A copy of an example whose declared tests are ``tests``."""
    spec = tmp_path / example
    shutil.copytree(EXAMPLES / example, spec)
    topology = json.loads((spec / "topology.json").read_text())
    topology["newtlab"]["validate"] = tests
    (spec / "topology.json").write_text(json.dumps(topology))
    return spec


def problems(spec: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        Lab.load(spec)
    return str(info.value).splitlines()


def test_the_line3_examples_tests_on_their_nodes() -> None:
    checks = Lab.load(EXAMPLES / "line3").plan.checks
    assert [(c.test, c.node) for c in checks] == [
        ("links", "r1"), ("links", "r2"), ("links", "r3"),
        ("across", "r1"), ("across", "r3"),
        ("forwarding", "r2"),
        ("addresses", "r1"), ("addresses", "r2"), ("addresses", "r3"),
    ]  # fmt: skip
    links = {c.node: c for c in checks if c.test == "links"}
    # each router pings the far end of its eth1, from the topology's addresses
    assert {n: c.ping_to for n, c in links.items()} == {
        "r1": "10.0.12.2", "r2": "10.0.12.1", "r3": "10.0.23.2"
    }  # fmt: skip
    assert shlex.split(links["r1"].command)[0] == "ping"
    assert links["r1"].fail == "r1 cannot reach r2:eth1 across their link"
    assert links["r1"].wait == 30
    forwarding = next(c for c in checks if c.test == "forwarding")
    assert shlex.split(forwarding.command) == ["cat", "/proc/sys/net/ipv4/ip_forward"]
    address = next(c for c in checks if c.test == "addresses" and c.node == "r3")
    assert address.query is not None and address.query.test == "contains"
    assert address.query.value == "10.0.23.3"


def test_virtual_hosts_are_nodes_of_their_own() -> None:
    checks = Lab.load(EXAMPLES / "hosts2").plan.checks
    gateway = {c.node: c.ping_to for c in checks if c.test == "gateway"}
    assert gateway == {"host1": "10.0.1.1", "host2": "10.0.2.0"}  # device_type host: not r1
    across = next(c for c in checks if c.test == "host-to-host")
    assert (across.node, across.ping_to) == ("host1", "10.0.2.1")  # host2's derived address


def test_values_are_templates_of_the_plan(tmp_path: Path) -> None:
    spec = with_tests(tmp_path, "line3", [
        {"name": "t", "nodes": ["r2"],
         "exec": ["echo", "{{ lab }}", "{{ nodes.r3.interfaces.eth1.peer_node }}",
                  "{{ node.interfaces | length }}", "it's"],
         "expect": {"exit": [0, 1], "match": "^{{ node.name }}$", "no_match": "{{ node.vm }}x"},
         "ssh": None},
        {"name": "p", "nodes": ["r1"], "ping": {"to": "10.0.23.3", "count": 5, "loss": 20,
                                                  "source": "{{ node.address }}"}},
        {"name": "cli", "platform": "newtlab-host", "ssh": "show {{ node.name }} | json",
         "expect": {"exit": None, "query": "length(peers)", "equals": 2},
         "wait": {"timeout": 60, "interval": 5}},
    ])  # fmt: skip
    lab = Lab.load(spec, name="demo")
    t, p, *cli = lab.plan.checks
    assert shlex.split(t.command) == ["echo", "demo", "r2", "2", "it's"]
    assert (t.exit, t.match, t.no_match) == ([0, 1], "^r2$", "r2x")
    assert shlex.split(p.command) == ["ping", "-c", "5", "-W", "2", "-w", "9",
                                      "-I", "10.0.12.1", "10.0.23.3"]  # fmt: skip
    assert p.loss == 20
    assert [c.node for c in cli] == ["r1", "r2", "r3"]
    assert cli[0].command == "show r1 | json" and cli[0].exit is None  # as written, any status
    assert cli[0].query is not None and (cli[0].query.test, cli[0].query.value) == ("equals", 2)
    assert (cli[0].wait, cli[0].interval) == (60, 5)


def test_bad_tests_are_reported_at_once_by_file_test_and_field(tmp_path: Path) -> None:
    spec = with_tests(tmp_path, "line3", [
        {"name": "none", "nodes": ["r1"]},
        {"name": "two", "nodes": ["r1"], "ping": "r2", "ssh": "x"},
        {"name": "where", "ping": "r2"},
        {"name": "loss", "nodes": ["r1"], "ping": "r2", "expect": {"exit": 0}},
        {"name": "count", "nodes": ["r1"], "ssh": "x", "expect": {"count": 2}},
        {"name": "typo", "nodes": ["r1"], "ssh": "x", "expcet": {}},
    ])  # fmt: skip
    found = problems(spec)
    topology = str(spec / "topology.json")
    assert all(line.startswith(topology + ": newtlab.validate") for line in found), found
    text = "\n".join(found)
    assert '[0] (none): a test runs exactly one of "ping", "exec" (an argv) or "ssh"' in text
    assert "[1] (two): a test runs exactly one of" in text
    assert "[2] (where): say where the test runs" in text
    assert '[3] (loss): a ping test says what must hold with "loss"' in text
    assert '[4] (count).expect: "count" tests the result of a "query"' in text
    assert "[5] (typo).expcet: Extra inputs are not permitted" in text


def test_what_only_rendering_shows_is_reported_per_node(tmp_path: Path) -> None:
    spec = with_tests(tmp_path, "line3", [
        {"name": "who", "nodes": ["r1", "r9"], "ping": "r3"},
        {"name": "tpl", "device_type": "router", "ssh": "{{ node.nmae }}"},
        {"name": "re", "nodes": ["r1"], "ssh": "x", "expect": {"match": "({{ node.name }}"}},
        {"name": "jq", "nodes": ["r1"], "ssh": "x", "expect": {"query": "peers[", "equals": 1}},
        {"name": "to", "nodes": ["r1"], "ping": "r3:eth7"},
        {"name": "far", "nodes": ["r1"], "ping": "nowhere"},
        {"name": "kind", "device_type": "switch", "ssh": "x"},
        {"name": "kind", "nodes": ["r1"], "ssh": "x"},
    ])  # fmt: skip
    text = "\n".join(problems(spec))
    assert "[0] (who).nodes: no node 'r9' — did you mean r1 or r2 or r3?" in text
    for node in ("r1", "r2", "r3"):  # each node the template fails for
        assert f"[1] (tpl).ssh: for {node}: " in text
    assert "'dict object' has no attribute 'nmae'" in text
    assert "[2] (re).expect.match: for r1: '(r1' is not a regular expression" in text
    assert "[3] (jq).expect.query: for r1: 'peers[' is not a JMESPath expression" in text
    assert "[4] (to).ping.to: for r1: r3:eth7: no such interface — r3's interfaces: eth1" in text
    assert "[5] (far).ping.to: for r1: 'nowhere' is no address and no node of the lab" in text
    assert "[6] (kind): no node of device_type 'switch': the test would run nowhere" in text
    assert "[7] (kind).name: two tests are named 'kind'" in text


def test_a_node_without_an_address_cannot_be_pinged_by_name(tmp_path: Path) -> None:
    spec = with_tests(tmp_path, "line3", [{"name": "p", "nodes": ["r1"], "ping": "r3"}])
    topology = json.loads((spec / "topology.json").read_text())
    del topology["devices"]["r3"]["interfaces"]["eth1"]["ip"]
    (spec / "topology.json").write_text(json.dumps(topology))
    (spec / "configs" / "r3.cfg").unlink()
    assert any("r3 has no address in the topology" in line for line in problems(spec))


def test_choosing_tests_and_nodes() -> None:
    lab = Lab.load(EXAMPLES / "line3")
    assert [c.node for c in lab.checks(["across"])] == ["r1", "r3"]
    assert [c.test for c in lab.checks(nodes=["r2"])] == ["links", "forwarding", "addresses"]
    assert [c.id for c in lab.checks(["links", "across"], ["r3"])] == ["links[r3]", "across[r3]"]
    with pytest.raises(UsageError, match="no test 'acros' is declared — did you mean across"):
        lab.checks(["acros"])
    with pytest.raises(UsageError, match="no declared test runs on 'r7'"):
        lab.checks(nodes=["r7"])


def test_plan_lists_each_nodes_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    shown = run_cli("plan", "-S", str(EXAMPLES / "hosts2"), "--no-probe")
    assert shown.returncode == 0, shown.stderr
    table = shown.stdout.split("Tests (`newtlab validate`)", 1)[1]
    assert "gateway" in table and "host-to-host" in table and "ip -j route show" in table
    assert 'JSON [0].gateway == "10.0.1.1"' in " ".join(table.split())


def test_validate_needs_a_deployed_lab_and_declared_tests(tmp_path: Path) -> None:
    """Exit 2: nothing was judged (a lab that is not there, no tests to run)."""
    missing = run_cli("validate", "nolab")
    assert missing.returncode == 2 and "lab 'nolab' is not deployed" in missing.stderr
    line3 = str(EXAMPLES / "line3")
    apart = run_cli("validate", "-S", line3, "--test", "forwarding", "--node", "r1")
    assert apart.returncode == 2 and "none of the tests chosen runs on the nodes" in apart.stderr
    bare = with_tests(tmp_path, "line3", [])
    refused = run_cli("deploy", "-S", str(bare), "--validate")
    assert refused.returncode == 2, refused.stderr
    assert "--validate:" in refused.stderr and "declares no tests" in refused.stderr
