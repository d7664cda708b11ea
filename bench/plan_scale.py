"""Plan a generated 1,000-node / 2,000-link topology on a 4-server pool and print the time.

Usage: python bench/plan_scale.py [--nodes N] [--links L] [--repeat R] [--json]

Measures (median of R runs, in this process) the time to read and validate
the spec files (load) and to build the plan from them and serialise it
(``build_plan`` + ``to_json``) for a random topology: every link joins the
next free ports of two random nodes, every 50th node is pinned to a server,
and the 4 servers are only planned for, never contacted. The baseline,
measured in the same run, is the load alone: the ratio plan/load shows what
planning adds on top of parsing. Target: load + plan under 1 s. The README's
figures are ``python bench/plan_scale.py`` with its defaults.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from newtlab.home import homes
from newtlab.plan.plan import build_plan
from newtlab.spec.load import load_specs


def generate(root: Path, nodes: int, links: int, seed: int = 7) -> Path:
    """A random sequential-map topology: each link uses the next free port of both ends."""
    rng = random.Random(seed)
    names = [f"n{i:04d}" for i in range(nodes)]
    next_port = dict.fromkeys(names, 0)
    link_list = []
    for _ in range(links):
        a, z = rng.sample(names, 2)
        link_list.append({"a": f"{a}:Ethernet{next_port[a]}", "z": f"{z}:Ethernet{next_port[z]}"})
        next_port[a] += 1
        next_port[z] += 1
    servers = [{"name": f"srv{i}", "address": f"10.0.0.{i + 1}", "max_nodes": 0} for i in range(4)]
    topology = {
        "devices": {n: {} for n in names},
        "links": link_list,
        "newtlab": {
            "link_port_base": 20000,
            "console_port_base": 15000,
            "ssh_port_base": 17000,
            "servers": servers,
        },
    }
    platforms = {
        "platforms": {
            "sw": {
                "vm_image": "/images/sw.qcow2",
                "vm_interface_map": "sequential",
                "vm_credentials": {"user": "admin", "pass": "pw"},
            }
        }
    }
    root.mkdir(parents=True)
    (root / "topology.json").write_text(json.dumps(topology))
    (root / "platforms.json").write_text(json.dumps(platforms))
    (root / "profiles").mkdir()
    for i, name in enumerate(names):
        pin = {"vm_host": "srv0"} if i % 50 == 0 else {}
        (root / "profiles" / f"{name}.json").write_text(json.dumps({"platform": "sw", **pin}))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--links", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.repeat < 1 or args.nodes < 2:
        parser.error("--repeat must be at least 1 and --nodes at least 2")
    with tempfile.TemporaryDirectory() as tmp:
        spec = generate(Path(tmp) / "scale", args.nodes, args.links)
        loads, totals = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            specs = load_specs(spec)
            t1 = time.perf_counter()
            plan = build_plan(specs, "scale", Path(tmp) / "state", homes(), "kvm")
            plan.to_json()
            t2 = time.perf_counter()
            loads.append(t1 - t0)
            totals.append(t2 - t0)
    load, total = statistics.median(loads), statistics.median(totals)
    result = {
        "nodes": len(plan.nodes),
        "links": len(plan.links),
        "servers": len(plan.hosts),
        "load_s": round(load, 4),
        "plan_s": round(total - load, 4),
        "load_plus_plan_s": round(total, 4),
        "plan_over_load": round((total - load) / load, 2),
        "target_s": 1.0,
        "meets_target": total < 1.0,
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(
        f"{result['nodes']} nodes, {result['links']} links, {result['servers']} servers "
        f"(median of {args.repeat})"
    )
    print(f"  load specs        {load * 1000:8.1f} ms   (baseline)")
    print(
        f"  plan (+ to_json)  {(total - load) * 1000:8.1f} ms   ({result['plan_over_load']}x load)"
    )
    print(
        f"  total             {total * 1000:8.1f} ms   target < 1000 ms: "
        f"{'met' if result['meets_target'] else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
