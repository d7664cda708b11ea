"""`newtlab graph` of the example spec dirs: Mermaid and DOT as recorded in tests/golden/graphs/
(regenerate with --update-golden), DOT accepted by Graphviz, and the page's layout sane."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_golden_plans import SPECS

from newtlab.export.dot import to_dot
from newtlab.export.graph import build_graph
from newtlab.export.html import layout, to_html
from newtlab.export.mermaid import to_mermaid
from newtlab.lab import Lab
from specfactory import linked, write_specs

GOLDEN = Path(__file__).parents[1] / "golden" / "graphs"


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("kind", ["mermaid", "dot"])
def test_the_graph_is_the_recorded_one(
    name: str, kind: str, request: pytest.FixtureRequest, _isolated_home: Path
) -> None:
    graph = build_graph(Lab.load(SPECS[name], accel="tcg").plan)
    text = to_mermaid(graph) if kind == "mermaid" else to_dot(graph)
    golden = GOLDEN / f"{name}.{'mmd' if kind == 'mermaid' else 'dot'}"
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no {golden}: run with --update-golden"
    assert text == golden.read_text(), f"the {kind} graph of {name} changed"
    if kind == "dot" and shutil.which("dot"):
        drawn = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True)
        assert drawn.returncode == 0 and "<svg" in drawn.stdout, drawn.stderr


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_device_is_drawn_once_inside_the_page_without_overlaps(
    name: str, _isolated_home: Path
) -> None:
    graph = build_graph(Lab.load(SPECS[name], accel="tcg").plan)
    where = layout(graph)
    boxes = [where.devices[d.name] for d in graph.devices]
    assert len(boxes) == len(graph.devices)
    for i, a in enumerate(boxes):
        assert a.x >= 0 and a.x + a.w <= where.width and a.y + a.h <= where.height
        for b in boxes[i + 1 :]:
            apart = a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
            assert apart, f"{a} overlaps {b}"
    for vm, box in where.host_vms.items():  # a host VM holds its virtual hosts
        for vhost in (d for d in graph.devices if d.vm == vm):
            inner = where.devices[vhost.name]
            assert box.x < inner.x and inner.x + inner.w < box.x + box.w
            assert box.y < inner.y and inner.y + inner.h < box.y + box.h
    page = to_html(graph, "now")
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    assert 'http-equiv="refresh"' not in page  # a plan does not change: no reloading
    for device in graph.devices:
        assert f'data-name="{device.name}"' in page


def test_servers_of_a_pool_are_clusters_holding_their_devices(tmp_path: Path) -> None:
    spec = write_specs(
        tmp_path / "pool",
        linked(("a:Ethernet0", "b:Ethernet0")),
        profiles={n: {"platform": "sw", "vm_host": s} for n, s in (("a", "s1"), ("b", "s2"))},
        newtlab={"servers": [{"name": "s1", "address": "10.9.0.1"},
                             {"name": "s2", "address": "10.9.0.2"}]},
    )  # fmt: skip
    graph = build_graph(Lab.load(spec).plan)
    dot = to_dot(graph)
    s1 = dot.index('subgraph "cluster_server_s1"')
    s2 = dot.index('subgraph "cluster_server_s2"')
    assert s1 < dot.index('"a" [label') < s2 < dot.index('"b" [label')
    mermaid = to_mermaid(graph)
    assert 'subgraph s0["server s1"]' in mermaid and 'subgraph s1["server s2"]' in mermaid
    where = layout(graph)
    a, b = where.devices["a"], where.devices["b"]
    s1_box, s2_box = where.servers["s1"], where.servers["s2"]
    assert s1_box.x < a.x < a.x + a.w < s1_box.x + s1_box.w <= s2_box.x < b.x
