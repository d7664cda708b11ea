"""Boot concurrency: N host-image VMs started all at once vs staged, on this machine.

Usage: python bench/boot.py [--vms 8] [--parallel 0,1,2,4] [--accel tcg] [--json]

Measures, for each cap (``deploy --boot-parallel``; 0 = all at once), the wall
time of deploying a lab of N unlinked VMs until every VM answers SSH (the lab
is destroyed after each); printed with the nodes that failed and the ratio to
the baseline: the all-at-once deploy of the same run (the first cap listed if
0 is not among them). The figures behind deploy's default cap (all at once)
are those of ``python bench/boot.py`` with its defaults: 8 VMs under TCG.
Needs the host image (``newtlab image build host``); uses a temporary
NEWTLAB_HOME and ports 46000-46300.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from newtlab.errors import NewtlabError
from newtlab.lab import Lab, destroy_lab


@dataclass
class Row:
    parallel: int
    seconds: float
    failed: list[str] = field(default_factory=list)
    ratio: float = 0.0


def write_lab(root: Path, vms: int) -> Path:
    devices: dict[str, Any] = {f"v{i}": {"interfaces": {}} for i in range(vms)}
    topology = {"devices": devices, "newtlab": {"link_port_base": 46000,
                "console_port_base": 46100, "ssh_port_base": 46200}}  # fmt: skip
    (root / "profiles").mkdir(parents=True)
    (root / "topology.json").write_text(json.dumps(topology))
    platforms = {"platforms": {"host": {"base": "newtlab-host", "vm_boot_timeout": 600}}}
    (root / "platforms.json").write_text(json.dumps(platforms))
    for name in devices:
        (root / "profiles" / f"{name}.json").write_text(json.dumps({"platform": "host"}))
    return root


def run(spec: Path, parallel: int, accel: str) -> Row:
    lab = Lab.load(spec, name="bootbench")
    start = time.monotonic()
    failed: list[str] = []
    try:
        lab.deploy(accel=accel, boot_parallel=parallel)
    except NewtlabError as exc:  # one "  NODE: why" line per node that failed
        lines = str(exc).splitlines()[1:]
        failed = [line.split(":")[0].strip() for line in lines if line.startswith("  ")]
    finally:
        seconds = time.monotonic() - start
        destroy_lab("bootbench", grace=0)
    return Row(parallel, round(seconds, 1), failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--vms", type=int, default=8)
    parser.add_argument("--parallel", default="0,1,2,4")
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    image = Path(os.environ.get("NEWTLAB_HOME", Path.home() / ".newtlab")) / "images"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (home / "images").mkdir(parents=True)
        (home / "images" / "newtlab-host.qcow2").symlink_to(image / "newtlab-host.qcow2")
        os.environ["NEWTLAB_HOME"] = str(home)
        spec = write_lab(Path(tmp) / "spec", args.vms)
        rows = [run(spec, int(p), args.accel) for p in args.parallel.split(",")]
    base = next((r.seconds for r in rows if r.parallel == 0), rows[0].seconds)
    for row in rows:
        row.ratio = round(row.seconds / base, 2)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return
    print(f"{args.vms} VMs, {os.cpu_count()} cores, {args.accel}")
    for row in rows:
        cap = "all at once" if row.parallel == 0 else f"{row.parallel} at a time"
        print(f"  {cap:14} {row.seconds:6.1f} s to all SSH  {row.ratio:5.2f}×  "
              f"failed: {', '.join(row.failed) or 'none'}")  # fmt: skip


if __name__ == "__main__":
    main()
