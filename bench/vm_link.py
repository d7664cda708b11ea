"""iperf3 between two VMs through newtlink, against the same VMs joined directly.

Usage: python bench/vm_link.py [--seconds S] [--json]

Deploys two host-image VMs (r1:eth1 — r2:eth1) with newtlab and runs iperf3
from r1 to r2 through the bridge. Then, same run, the same two VMs joined by
a direct QEMU-to-QEMU link: both VMs are stopped, r2's argv in the lab
state gets its eth1 dialling r1's Unix socket (``-netdev stream,server=off``), both are
started again as newtlab starts any VM, the bridge is stopped (r1's NIC then
takes r2's waiting connection), and iperf3 runs again. Printed: the Mbit/s
r2 received each time, and the ratio of through-newtlink to the baseline, the
direct link of the same run. Not a gate: under TCG the guests, not the link,
are the limit. The lab is destroyed at the end, whatever happened.

The README's figures are ``python bench/vm_link.py`` with its defaults (10 s,
KVM when this machine has it, else TCG). Needs the host image (``newtlab
image build host``); uses ports 37000-37300.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from newtlab.lab import Lab, destroy_lab
from newtlab.runtime.hosts import local_host
from newtlab.state import load_state, save_state

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "line3"
LAB = "benchvmlink"


def two_nodes(root: Path) -> Path:
    """examples/line3 without r3: r1:eth1 — r2:eth1, on ports of its own."""
    spec = root / LAB
    shutil.copytree(EXAMPLE, spec)
    topology = json.loads((spec / "topology.json").read_text())
    del topology["devices"]["r3"]
    topology["devices"]["r2"]["interfaces"].pop("eth2", None)
    topology["newtlab"] = {**topology.get("newtlab", {}), "link_port_base": 37000,
                           "console_port_base": 37100, "ssh_port_base": 37200}  # fmt: skip
    (spec / "topology.json").write_text(json.dumps(topology, indent=2))
    (spec / "profiles" / "r3.json").unlink()
    shutil.rmtree(spec / "configs", ignore_errors=True)  # addressed by hand, as below
    return spec


def run(lab: Lab, node: str, command: str, timeout: float = 120) -> str:
    result = subprocess.run(
        lab.ssh_command(node, [command]), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"{node}: {command}: {result.stderr or result.stdout}")
    return result.stdout


def addresses(lab: Lab) -> None:
    for node, address in (("r1", "10.0.12.1/24"), ("r2", "10.0.12.2/24")):
        run(lab, node, f"ip addr add {address} dev eth1 && ip link set eth1 up")
    for _ in range(30):  # the link settles (carrier, ARP)
        probe = lab.ssh_command("r1", ["ping -c1 -W1 10.0.12.2"])
        if "bytes from" in subprocess.run(probe, capture_output=True, text=True).stdout:
            return
        time.sleep(1)
    raise RuntimeError("r1 cannot reach r2 over eth1")


def iperf(lab: Lab, seconds: float) -> float:
    """Mbit/s r1 sends to r2, as r2 receives it."""
    run(lab, "r2", "iperf3 -s -D -1")
    time.sleep(0.5)
    report = json.loads(run(lab, "r1", f"iperf3 -c 10.0.12.2 -t {seconds:g} -J"))
    return float(report["end"]["sum_received"]["bits_per_second"]) / 1e6


def join_directly() -> Lab:
    """r1 and r2 booted again with r2's eth1 dialling r1's, and the bridge gone."""
    state = load_state(LAB)
    r1_socket = state.plan.node("r1").nics[1].listen
    r2 = state.plan.node("r2")
    dial = f"stream,id=eth1,server=off,addr.type=unix,addr.path={r1_socket}"
    argv = [re.sub(r"stream,id=eth1,server=on,\S+", dial, a) for a in r2.qemu_argv]
    assert argv != r2.qemu_argv, "r2's eth1 netdev not found in its argv"
    nodes = [n.model_copy(update={"qemu_argv": argv}) if n.name == "r2" else n
             for n in state.plan.nodes]  # fmt: skip
    state.plan = state.plan.model_copy(update={"nodes": nodes})
    save_state(state)
    joined = Lab.attach(LAB)
    joined.start("r1")  # listening for its one peer again
    joined.start("r2")  # its connection waits in r1's backlog while the bridge holds r1
    asyncio.run(local_host().datapath.stop(LAB))
    return joined


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab.load(two_nodes(Path(tmp)))
        try:
            lab.deploy(accel="auto")
            addresses(lab)
            through_bridge = iperf(lab, args.seconds)
            lab.stop("r1", grace=0)
            lab.stop("r2", grace=0)
            joined = join_directly()
            addresses(joined)
            direct = iperf(joined, args.seconds)
            accel = load_state(LAB).plan.accel
        finally:
            destroy_lab(LAB, grace=0)
    result = {"through_newtlink_mbit": round(through_bridge, 1),
              "direct_qemu_socket_mbit": round(direct, 1),
              "ratio": round(through_bridge / direct, 2), "accel": accel}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"iperf3 r1 → r2 for {args.seconds:g} s, {accel}, {os.cpu_count()} cores:")
    print(f"  through newtlink          {through_bridge:8.1f} Mbit/s")
    print(f"  direct QEMU socket link   {direct:8.1f} Mbit/s")
    print(f"  ratio                     {through_bridge / direct:8.2f}")


if __name__ == "__main__":
    main()
