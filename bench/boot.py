"""Boot concurrency: N host-image VMs, all at once against capped, on this machine.

Usage: python bench/boot.py [--vms 4,8,16,32] [--parallel auto,0,2,4] [--accel tcg]
                            [--boot-timeout S] [--json]

For each lab size N and each cap (``deploy --boot-parallel``: 0 = all at once,
``auto`` = deploy's default, from the host's cores and accelerator), deploys a
lab of N unlinked VMs and measures the wall time until every VM answered SSH
(the lab is destroyed after each); printed with the nodes that failed and the
ratio to the baseline: all at once for the same N in the same run (the first
cap listed if 0 is not among them). The VMs keep the host image platform's own
boot timeout unless ``--boot-timeout`` says otherwise, so a cap that makes
VMs miss their deadline shows as failures, as it would for a user. The figures
behind deploy's default (``BOOTS_PER_CORE`` in src/newtlab/ops/deploy.py) are
those of ``python bench/boot.py`` with its defaults. Needs the host image
(``newtlab image build host``); uses a temporary NEWTLAB_HOME and ports
46000-46300.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from newtlab.errors import NewtlabError
from newtlab.lab import Lab, destroy_lab


@dataclass
class Row:
    vms: int
    parallel: str  # "auto", or the cap: "0" is all at once
    seconds: float
    failed: list[str] = field(default_factory=list)
    ratio: float = 0.0


def write_lab(root: Path, vms: int, boot_timeout: int | None) -> Path:
    devices: dict[str, Any] = {f"v{i}": {"interfaces": {}} for i in range(vms)}
    topology = {"devices": devices, "newtlab": {"link_port_base": 46000,
                "console_port_base": 46100, "ssh_port_base": 46200}}  # fmt: skip
    (root / "profiles").mkdir(parents=True)
    (root / "topology.json").write_text(json.dumps(topology))
    platform: dict[str, Any] = {"base": "newtlab-host"}
    if boot_timeout is not None:
        platform["vm_boot_timeout"] = boot_timeout
    (root / "platforms.json").write_text(json.dumps({"platforms": {"host": platform}}))
    for name in devices:
        (root / "profiles" / f"{name}.json").write_text(json.dumps({"platform": "host"}))
    return root


def run(spec: Path, vms: int, parallel: str, accel: str) -> Row:
    lab = Lab.load(spec, name="bootbench")
    start = time.monotonic()
    failed: list[str] = []
    try:
        lab.deploy(accel=accel, boot_parallel=None if parallel == "auto" else int(parallel))
    except NewtlabError as exc:  # "  NODE: why" per node that failed, its details indented more
        lines = str(exc).splitlines()[1:]
        failed = [line.split(":")[0].strip() for line in lines if re.match(r"  \S", line)]
    finally:
        seconds = time.monotonic() - start
        destroy_lab("bootbench", grace=0)
    return Row(vms, parallel, round(seconds, 1), failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--vms", default="4,8,16,32", help="lab sizes, comma-separated")
    parser.add_argument("--parallel", default="auto,0,2,4", help="caps; auto: deploy's default")
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--boot-timeout", type=int, help="vm_boot_timeout (default: the image's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    image = Path(os.environ.get("NEWTLAB_HOME", Path.home() / ".newtlab")) / "images"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (home / "images").mkdir(parents=True)
        for name in ("newtlab-host.qcow2", "newtlab-host.vmlinux", "newtlab-host.initrd.gz"):
            (home / "images" / name).symlink_to(image / name)  # the disk, and its direct boot
        os.environ["NEWTLAB_HOME"] = str(home)
        for vms in (int(n) for n in args.vms.split(",")):
            spec = write_lab(Path(tmp) / f"spec{vms}", vms, args.boot_timeout)
            size = [run(spec, vms, p.strip(), args.accel) for p in args.parallel.split(",")]
            base = next((r.seconds for r in size if r.parallel == "0"), size[0].seconds)
            for row in size:
                row.ratio = round(row.seconds / base, 2)
            rows += size
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return
    print(f"{os.cpu_count()} cores, {args.accel}")
    for row in rows:
        cap = {"0": "all at once", "auto": "auto"}.get(row.parallel, f"{row.parallel} at a time")
        print(f"  {row.vms:3} VMs  {cap:14} {row.seconds:6.1f} s to all SSH  {row.ratio:5.2f}×  "
              f"failed: {len(row.failed)} {', '.join(row.failed[:8])}")  # fmt: skip


if __name__ == "__main__":
    main()
