"""The FRR router image against the host image it is built on: size, boot, memory.

Usage: python bench/router.py [--runs 3] [--accel tcg] [--json]

Builds both images (a no-op when current) into NEWTLAB_HOME/images, then, for
each image in turn, deploys a lab of one VM of it ``--runs`` times, alone on
the machine, and reads from newtlab's state the time from QEMU's start to
ready: for the host image, its SSH login; for the router image, its
readiness probe (FRR's configuration applied, zebra and bgpd answering
vtysh). The router VM runs a BGP instance (its startup config) so that its
memory is a working router's; the guest memory in use is MemTotal minus
MemAvailable of the guest's /proc/meminfo once ready. Printed: each image's
size, the median start-to-ready and memory, and the router's ratio to the
host image measured in the same run (targets, docs/image.md: image ≤ 45
MiB, guest memory ≤ 192 MiB, start to ready ≤ 1.5× the host image's).
Uses a temporary NEWTLAB_HOME for the labs and ports 46400-46700.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from newtlab.home import cache_dir, images_dir
from newtlab.image import build_image
from newtlab.lab import Lab, destroy_lab

ROUTER_CONFIG = """frr defaults datacenter
hostname r
router bgp 65000
 no bgp ebgp-requires-policy
 neighbor 10.255.0.1 remote-as external
!
"""


@dataclass
class Row:
    image: str
    size_mib: float
    ready_s: float  # median, QEMU start to ready
    memory_mib: float  # median, guest memory in use once ready
    ratio: float = 1.0  # ready_s over the host image's


def write_lab(root: Path, kind: str) -> Path:
    topology = {"devices": {"v": {"interfaces": {}}}, "newtlab": {"link_port_base": 46400,
                "console_port_base": 46500, "ssh_port_base": 46600}}  # fmt: skip
    (root / "profiles").mkdir(parents=True)
    (root / "topology.json").write_text(json.dumps(topology))
    platforms = {"platforms": {"p": {"base": f"newtlab-{kind}"}}}
    (root / "platforms.json").write_text(json.dumps(platforms))
    (root / "profiles" / "v.json").write_text(json.dumps({"platform": "p"}))
    if kind == "router":
        (root / "configs").mkdir()
        (root / "configs" / "v.cfg").write_text(ROUTER_CONFIG)
    return root


def _in_use_mib(lab: Lab) -> float:
    meminfo = lab.run("v", ["cat", "/proc/meminfo"]).stdout
    fields = {line.split(":")[0]: int(line.split()[1]) for line in meminfo.splitlines()}
    return (fields["MemTotal"] - fields["MemAvailable"]) / 1024


def measure(spec: Path, accel: str) -> tuple[float, float]:
    lab = Lab.load(spec, name="routerbench")
    try:
        lab.deploy(accel=accel)
        ready = lab.status().nodes[0].boot_seconds
        assert ready is not None
        return ready, _in_use_mib(lab)
    finally:
        destroy_lab("routerbench", grace=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    built = {kind: build_image(kind, images_dir(), cache_dir()) for kind in ("host", "router")}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (home / "images").mkdir(parents=True)
        for path in (path for image in built.values() for path in image.boot_files):
            (home / "images" / path.name).symlink_to(path)
        os.environ["NEWTLAB_HOME"] = str(home)
        for kind, image in built.items():
            spec = write_lab(Path(tmp) / kind, kind)
            runs = [measure(spec, args.accel) for _ in range(args.runs)]
            rows.append(Row(kind, round(image.image.stat().st_size / (1 << 20), 1),
                            round(statistics.median(r for r, _ in runs), 1),
                            round(statistics.median(m for _, m in runs), 1)))  # fmt: skip
    rows[1].ratio = round(rows[1].ready_s / rows[0].ready_s, 2)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return
    print(f"{os.cpu_count()} cores, {args.accel}, median of {args.runs} boots each")
    for row in rows:
        print(f"  {row.image:7} image {row.size_mib:5.1f} MiB   start to ready {row.ready_s:5.1f} s"
              f" ({row.ratio:.2f}×)   guest memory in use {row.memory_mib:5.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
