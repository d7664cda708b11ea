"""Deploy chains of N = 1, 2, 4 host VMs and print where the time goes.

Usage: python bench/deploy.py [--sizes 1,2,4] [--servers K] [--engines] [--json]

For each N, a chain of N newtlab host VMs (r1 — r2 — ... — rN) is deployed
under TCG and destroyed. Measured per N: deploy's wall time, when each deploy
phase first started (from its progress events), the slowest node's own
boot-to-SSH time (its ``boot_seconds`` in the returned status), and the
orchestration overhead: deploy wall time minus that slowest boot (target:
under 2 s at N = 4). The baseline, measured in the same run, is thus the VMs'
own boot time: the overhead is what newtlab adds to it.

With ``--servers K`` (root only), the same chains are also deployed over K
SSH servers — network namespaces of this machine with their own sshd, as
the tests use (tests/testservers.py) — the nodes spread over them by
placement, so each row's overhead includes SSH, shipping newtlink, uploading
the image (first deploy only) and the cross-server links.

With ``--engines`` (root only) it instead deploys examples/line3 with each VM
engine, plain QEMU and libvirt (on a private libvirtd it starts, as the tests
do: tests/libvirtd.py), interleaved three times, and prints each engine's
median deploy time and libvirt's ratio to plain QEMU (target: at most 1.1).

The README's figures: ``python bench/deploy.py --servers 2`` (as root). The
host image is built (or reused) in the user's NEWTLAB_HOME first; the labs
get a temporary one, and ports from 26000 + 100·N up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newtlab.home import cache_dir, images_dir
from newtlab.image import build_host_image
from newtlab.lab import Lab, destroy_lab
from newtlab.ops.events import Event

if TYPE_CHECKING:
    from testservers import TestServer

REPO = Path(__file__).resolve().parents[1]


def chain_specs(root: Path, n: int, image: Path, pool: list[TestServer] | None = None) -> Path:
    devices: dict[str, Any] = {}
    for i in range(1, n + 1):
        ifaces = {}
        if i > 1:
            ifaces["eth1"] = {"link": f"r{i - 1}:eth2"}
        if i < n:
            ifaces["eth2"] = {"link": f"r{i + 1}:eth1"}
        devices[f"r{i}"] = {"interfaces": ifaces}
    base = 26000 + n * 100
    section: dict[str, Any] = {
        "link_port_base": base,
        "console_port_base": base + 40,
        "ssh_port_base": base + 70,
    }
    if pool:
        section["servers"] = [
            {"name": s.name, "address": s.address, "user": s.user,
             "identity_file": str(s.identity_file)}
            for s in pool
        ]  # fmt: skip
    topology = {"devices": devices, "newtlab": section}
    platforms = json.loads((REPO / "examples" / "line3" / "platforms.json").read_text())
    platforms["platforms"]["newtlab-host"]["vm_image"] = str(image)
    spec = root / (f"chain{n}-{len(pool)}servers" if pool else f"chain{n}")
    (spec / "profiles").mkdir(parents=True)
    (spec / "topology.json").write_text(json.dumps(topology))
    (spec / "platforms.json").write_text(json.dumps(platforms))
    for name in devices:
        (spec / "profiles" / f"{name}.json").write_text(json.dumps({"platform": "newtlab-host"}))
    return spec


def measure(
    n: int, image: Path, root: Path, pool: list[TestServer] | None = None
) -> dict[str, Any]:
    marks: list[tuple[float, Event]] = []
    lab = Lab.load(chain_specs(root, n, image, pool), accel="tcg")
    t0 = time.monotonic()
    try:
        status = lab.deploy(
            accel="tcg", progress=lambda e: marks.append((time.monotonic() - t0, e))
        )
        wall = time.monotonic() - t0
    finally:
        destroy_lab(lab.name, grace=0)  # nothing left running, even when deploy fails
    first: dict[str, float] = {}
    for at, event in marks:
        first.setdefault(event.phase, at)
    unbooted = [node.name for node in status.nodes if node.boot_seconds is None]
    if unbooted:
        raise RuntimeError(f"deployed, but no boot time for {', '.join(unbooted)}")
    slowest = max(node.boot_seconds or 0.0 for node in status.nodes)
    return {
        "n": n,
        "where": f"{len(pool)} servers" if pool else "this host",
        "deploy_s": round(wall, 2),
        "slowest_boot_s": slowest,
        "overhead_s": round(wall - slowest, 2),
        "phase_start_s": {k: round(v, 2) for k, v in first.items()},
    }


def line3_on(root: Path, image: Path, engine: str, uri: str, run: int) -> Path:
    """examples/line3 with this machine's image and ``engine`` (its ports its own)."""
    spec = root / f"line3-{engine}-{run}"
    shutil.copytree(REPO / "examples" / "line3", spec)
    topology = json.loads((spec / "topology.json").read_text())
    section = topology["newtlab"]
    section.update(link_port_base=27000, console_port_base=27100, ssh_port_base=27200,
                   engine=engine)  # fmt: skip
    if engine == "libvirt":
        section["libvirt_uri"] = uri
    (spec / "topology.json").write_text(json.dumps(topology))
    platforms = json.loads((spec / "platforms.json").read_text())
    platforms["platforms"]["newtlab-host"]["vm_image"] = str(image)
    (spec / "platforms.json").write_text(json.dumps(platforms))
    return spec


def compare_engines(image: Path, root: Path, runs: int = 3) -> dict[str, Any]:
    """line3's deploy time with each engine, interleaved ``runs`` times; the medians."""
    sys.path.insert(0, str(REPO / "tests"))  # its helpers, as pytest finds them
    from libvirtd import private_libvirtd

    times: dict[str, list[float]] = {"qemu": [], "libvirt": []}
    with private_libvirtd(root / "libvirt") as daemon:
        for run in range(runs):
            for engine in sorted(times, reverse=run % 2 == 1):  # each goes first in turn
                spec = line3_on(root, image, engine, daemon.uri, run)
                lab = Lab.load(spec, name=f"line3-{engine}", accel="tcg")
                t0 = time.monotonic()
                try:
                    lab.deploy(accel="tcg")
                    times[engine].append(round(time.monotonic() - t0, 2))
                finally:
                    destroy_lab(lab.name, grace=0)
    medians = {engine: statistics.median(found) for engine, found in times.items()}
    return {"runs": times, "median_s": medians, "ratio": medians["libvirt"] / medians["qemu"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1,2,4")
    parser.add_argument("--servers", type=int, default=0, help="also over K SSH servers")
    parser.add_argument("--engines", action="store_true", help="line3 with QEMU and libvirt")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # The image is built (or reused) in the user's NEWTLAB_HOME; labs get a scratch one.
    image = build_host_image(images_dir(), cache_dir(), lambda line: None).image
    if args.engines:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["NEWTLAB_HOME"] = str(Path(tmp) / "home")
            found = compare_engines(image, Path(tmp))
        if args.json:
            json.dump(found, sys.stdout, indent=2)
            print()
            return
        for engine, runs in found["runs"].items():
            print(f"{engine:<8} deploy of line3: {', '.join(f'{t:.1f}' for t in runs)} s; "
                  f"median {found['median_s'][engine]:.1f} s")  # fmt: skip
        verdict = "met" if found["ratio"] <= 1.1 else "MISSED"
        print(f"libvirt / qemu: {found['ratio']:.2f} (target <= 1.1: {verdict})")
        return
    sizes = [int(n) for n in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NEWTLAB_HOME"] = str(Path(tmp) / "home")
        results = [measure(n, image, Path(tmp)) for n in sizes]
        if args.servers:
            sys.path.insert(0, str(REPO / "tests"))  # its helpers, as pytest finds them
            from testservers import servers

            with servers(args.servers, Path(tmp) / "servers") as pool:
                results += [measure(n, image, Path(tmp), pool) for n in sizes]
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    header = f"{'N':>3} {'where':<10} {'deploy':>8} {'slowest boot':>13} {'overhead':>9}"
    print(f"{header}   phase starts (s)")
    for r in results:
        phases = " ".join(f"{k}={v}" for k, v in r["phase_start_s"].items())
        print(
            f"{r['n']:>3} {r['where']:<10} {r['deploy_s']:>7.2f}s {r['slowest_boot_s']:>12.1f}s "
            f"{r['overhead_s']:>8.2f}s   {phases}"
        )
    for where in dict.fromkeys(r["where"] for r in results):
        rows = [r for r in results if r["where"] == where]
        worst = next((r for r in rows if r["n"] == 4), rows[-1])
        verdict = "met" if worst["overhead_s"] < 2 else "MISSED"
        print(
            f"overhead at N={worst['n']} on {where}: {worst['overhead_s']:.2f} s "
            f"(target < 2 s: {verdict})"
        )


if __name__ == "__main__":
    main()
