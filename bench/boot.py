"""Boot concurrency: 8 host-image VMs started all at once vs staged, on this machine.

Usage: python bench/boot.py [--vms 8] [--parallel 0,1,2,4] [--accel tcg] [--json]

For each cap (``deploy --boot-parallel``; 0 = all at once) a lab of N
unlinked VMs is deployed and destroyed; printed: seconds until every VM
answered SSH, nodes that failed, and the ratio to all-at-once in the same
run. Needs the host image (`newtlab image build host`); uses a temporary
NEWTLAB_HOME and ports 46000-46300.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from newtlab.errors import NewtlabError
from newtlab.lab import Lab, destroy_lab


def write_lab(root: Path, vms: int) -> Path:
    devices = {f"v{i}": {"interfaces": {}} for i in range(vms)}
    topology = {"devices": devices, "newtlab": {"link_port_base": 46000,
                "console_port_base": 46100, "ssh_port_base": 46200}}  # fmt: skip
    (root / "profiles").mkdir(parents=True)
    (root / "topology.json").write_text(json.dumps(topology))
    platforms = {"platforms": {"host": {"base": "newtlab-host", "vm_boot_timeout": 600}}}
    (root / "platforms.json").write_text(json.dumps(platforms))
    for name in devices:
        (root / "profiles" / f"{name}.json").write_text(json.dumps({"platform": "host"}))
    return root


def run(spec: Path, parallel: int, accel: str) -> dict[str, object]:
    lab = Lab.load(spec, name="bootbench")
    start = time.monotonic()
    failed: list[str] = []
    try:
        lab.deploy(accel=accel, boot_parallel=parallel)
    except NewtlabError as exc:
        failed = [line.strip().split(":")[0] for line in str(exc).splitlines()[1:] if ":" in line]
    seconds = time.monotonic() - start
    destroy_lab("bootbench", grace=0)
    return {"parallel": parallel, "seconds": round(seconds, 1), "failed": failed}


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
    base = next((r["seconds"] for r in rows if r["parallel"] == 0), rows[0]["seconds"])
    for row in rows:
        row["ratio"] = round(float(row["seconds"]) / float(base), 2)  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.vms} VMs, {os.cpu_count()} cores, {args.accel}")
    for row in rows:
        cap = "all at once" if row["parallel"] == 0 else f"{row['parallel']} at a time"
        print(f"  {cap:14} {row['seconds']:6.1f} s to all SSH  {row['ratio']:5.2f}×  "
              f"failed: {', '.join(row['failed']) or 'none'}")  # type: ignore[arg-type]  # fmt: skip


if __name__ == "__main__":
    main()
