"""Lab snapshots against deploys: how fast a saved lab comes back, and what it takes.

Usage: python bench/snapshot.py [--runs 1] [--accel tcg] [--json]

Deploys examples/line3 (a copy, in a temporary NEWTLAB_HOME, ports 46700-47000)
and times deploy to ready — every node passed its readiness probe, as deploy
waits for. Then saves snapshot ``bench`` (the time the VMs were paused, its
size), restores it in place and, after a destroy, deploys the lab again from
it; each restore counts until every node answers its readiness probe again.
Printed: the medians of ``--runs`` rounds and each restore's ratio to the
deploy measured in the same run (target, docs/snapshots.md: ≤ 25 %).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from newtlab.home import cache_dir, images_dir
from newtlab.image import build_host_image
from newtlab.lab import Lab, destroy_lab

LINE3 = Path(__file__).resolve().parents[1] / "examples" / "line3"
PORTS = {"link_port_base": 46700, "console_port_base": 46800, "ssh_port_base": 46900}


@dataclass
class Round:
    deploy_s: float
    save_s: float
    paused_s: float
    size_mib: float
    restore_in_place_s: float
    restore_after_destroy_s: float


def _timed(work: Callable[[], object]) -> float:
    started = time.monotonic()
    work()
    return time.monotonic() - started


def one_round(spec: Path, accel: str) -> Round:
    lab = Lab.load(spec, name="snapbench")
    try:
        deploy_s = _timed(lambda: lab.deploy(accel=accel))
        started = time.monotonic()
        snapshot = lab.snapshot("bench", replace=True)
        save_s = time.monotonic() - started
        in_place = _timed(lambda: lab.restore("bench"))
        destroy_lab("snapbench", grace=0)
        after_destroy = _timed(lambda: lab.restore("bench"))
        return Round(round(deploy_s, 1), round(save_s, 1), snapshot.paused_seconds,
                     round(snapshot.bytes / (1 << 20), 1), round(in_place, 1),
                     round(after_destroy, 1))  # fmt: skip
    finally:
        destroy_lab("snapbench", grace=0)
        lab.delete_snapshot("bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    image = build_host_image(images_dir(), cache_dir())
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (home / "images").mkdir(parents=True)
        for path in image.boot_files:
            (home / "images" / path.name).symlink_to(path)
        os.environ["NEWTLAB_HOME"] = str(home)
        spec = Path(tmp) / "line3"
        shutil.copytree(LINE3, spec)
        topology = json.loads((spec / "topology.json").read_text())
        topology.setdefault("newtlab", {}).update(PORTS)
        (spec / "topology.json").write_text(json.dumps(topology))
        rounds = [one_round(spec, args.accel) for _ in range(args.runs)]
    median = Round(**{field: round(statistics.median(getattr(r, field) for r in rounds), 2)
                      for field in asdict(rounds[0])})  # fmt: skip
    in_place = median.restore_in_place_s / median.deploy_s
    after = median.restore_after_destroy_s / median.deploy_s
    if args.json:
        print(json.dumps({**asdict(median), "in_place_ratio": round(in_place, 3),
                          "after_destroy_ratio": round(after, 3)}, indent=2))  # fmt: skip
        return
    print(f"examples/line3, {os.cpu_count()} cores, {args.accel}, median of {args.runs}")
    print(f"  deploy to ready                {median.deploy_s:6.1f} s")
    print(f"  snapshot save                  {median.save_s:6.1f} s (VMs paused "
          f"{median.paused_s:.1f} s), {median.size_mib:.0f} MiB")  # fmt: skip
    print(f"  restore in place to ready      {median.restore_in_place_s:6.1f} s "
          f"({in_place:.0%} of deploy)")  # fmt: skip
    print(f"  restore after destroy to ready {median.restore_after_destroy_s:6.1f} s "
          f"({after:.0%} of deploy)")  # fmt: skip


if __name__ == "__main__":
    main()
