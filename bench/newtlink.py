"""newtlink against a direct connection and socat: throughput, latency, CPU, memory.

Usage: python bench/newtlink.py [--seconds S] [--repeat N] [--pings N] [--json]

All traffic is QEMU-framed (4-byte length + frame). Sender, receiver and
relay are separate processes. As in a lab, the endpoints listen like a QEMU
NIC (``-netdev socket,listen=``, one peer) and the relay dials both of them:
newtlink from its config (``a_dial``/``z_dial``), socat as
``socat TCP:A TCP:Z``. Sending starts once newtlink's stats say the link is
connected (frames sent before that are dropped by design). Printed side by
side, measured in one run:

* throughput (Gbit/s) for bulk (9,000-byte frames in 1 MiB writes), 1,500-byte
  frames in 64 KiB writes, and 64- and 1,500-byte frames (one send() per
  frame), through: a direct
  loopback connection (no relay: the sender dials the receiver), a plain
  ``os.splice`` relay that never looks at a frame (``splice_relay.py``: the
  reference), socat as a relay, and newtlink;
* round-trip latency (p50/p99 µs) of a 64-byte frame, unpinned and every process pinned
  to CPU 0 (unpinned figures mostly measure waking the other CPU);
* relay CPU per Gbit/s (from /proc/<pid>/stat), and the RSS and CPU share of
  one newtlink whose 1,000 links dial ports where nothing listens (it keeps
  redialling every side, backing off to once a second);
* the ratios newtlink/direct, newtlink/splice and newtlink/socat, and the round
  trip newtlink adds over direct.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from newtlab.newtlink import query_stats

HEAD = struct.Struct(">I")
# name → (frame size, bytes per write; 0: one send() per frame, as a VM's NIC does)
MODES = {"bulk": (9000, 1 << 20), "1500B/64K": (1500, 64 << 10), "1500B": (1500, 0),
         "64B": (64, 0)}  # fmt: skip
CLK_TCK = os.sysconf("SC_CLK_TCK")
CTX = mp.get_context("fork")


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def frame(size: int) -> bytes:
    return HEAD.pack(size) + bytes(size)


# -- endpoints (run in child processes; each takes ``ready`` last) ----------------------


def _endpoint_socket(port: int, dial: bool, ready: Any, nodelay: bool = False) -> socket.socket:
    """Listen on ``port`` like a QEMU NIC and take one peer, or (``dial``) connect to it."""
    if dial:  # direct runs only: the other endpoint is already listening
        ready.set()
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.settimeout(None)
    else:
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen(1)
            ready.set()
            sock, _ = server.accept()
    if nodelay:  # latency runs only: QEMU's socket netdev does not set it either
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def receiver(port: int, result: Any, ready: Any) -> None:
    sock = _endpoint_socket(port, False, ready)
    buf = bytearray(1 << 20)
    total, first, last = 0, 0.0, 0.0
    # newtlink keeps this side connected when the sender leaves (a pulled cable),
    # so the end of the run is a second of silence, not an EOF.
    sock.settimeout(30)
    while True:
        try:
            n = sock.recv_into(buf)
        except TimeoutError:
            break
        if not n:
            break
        sock.settimeout(1.0)
        if not total:
            first = time.perf_counter()
        total += n
        last = time.perf_counter()
    result.put((total, last - first))


def sender(
    port: int, dial: bool, size: int, write: int, seconds: float, go: Any, ready: Any
) -> None:
    sock = _endpoint_socket(port, dial, ready)
    one = frame(size)
    if write:
        payload, send = one * (write // len(one)), sock.sendall
    else:
        payload, send = one, sock.send  # one send() per frame, as a VM's NIC does
    go.wait(30)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(256):
            send(payload)
    sock.shutdown(socket.SHUT_WR)
    sock.close()


def echo(port: int, pin: bool, ready: Any) -> None:
    if pin:
        os.sched_setaffinity(0, {0})
    sock = _endpoint_socket(port, False, ready, nodelay=True)
    while True:
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data)


def round_trips(sock: socket.socket, count: int) -> list[float]:
    """Seconds each of ``count`` 64-byte frames takes to come back through ``sock``."""
    one = frame(64)
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        sock.sendall(one)
        got = 0
        while got < len(one):
            got += len(sock.recv(65536))
        samples.append(time.perf_counter() - t0)
    return samples


def pinger(port: int, dial: bool, count: int, result: Any, go: Any, pin: bool, ready: Any) -> None:
    if pin:
        os.sched_setaffinity(0, {0})
    sock = _endpoint_socket(port, dial, ready, nodelay=True)
    go.wait(30)
    samples = sorted(round_trips(sock, count))
    sock.close()
    result.put((samples[len(samples) // 2] * 1e6, samples[int(len(samples) * 0.99)] * 1e6))


@contextmanager
def endpoints() -> Iterator[Callable[..., None]]:
    """``start(target, *args)`` runs an endpoint and returns once it listens (or is about
    to dial); every endpoint is killed on the way out, whatever happened."""
    procs: list[Any] = []

    def start(target: Callable[..., None], *args: Any) -> None:
        ready = CTX.Event()
        proc = CTX.Process(target=target, args=(*args, ready), daemon=True)
        proc.start()
        procs.append(proc)
        if not ready.wait(10):
            raise RuntimeError(f"{target.__name__} did not start")

    try:
        yield start
    finally:
        for proc in procs:
            proc.kill()
            proc.join()


# -- relays ------------------------------------------------------------------------------


def newtlink_config(path: Path, dials: list[tuple[int, int]], stats: Path) -> None:
    links = [
        {"a": f"a{i}:e1", "z": f"z{i}:e1", "a_dial": f"127.0.0.1:{a}", "z_dial": f"127.0.0.1:{z}"}
        for i, (a, z) in enumerate(dials)
    ]
    path.write_text(json.dumps({"lab": "bench", "links": links, "stats_unix": str(stats)}))


@contextmanager
def relay(kind: str, a: int, z: int, pin: bool) -> Iterator[int | None]:
    """Relay between the endpoints listening on ports ``a`` and ``z`` (the relay dials
    both); yields its pid (None for direct) once it has linked them."""
    if kind == "direct":
        yield None
        return
    taskset = ["taskset", "-c", "0"] if pin else []
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.sock"
        if kind == "socat":
            command = ["socat", f"TCP:127.0.0.1:{a},nodelay", f"TCP:127.0.0.1:{z},nodelay"]
        elif kind == "splice":
            command = [sys.executable, str(Path(__file__).with_name("splice_relay.py")),
                       str(a), str(z)]  # fmt: skip
        else:
            newtlink_config(Path(tmp) / "bridge.json", [(a, z)], stats)
            command = [sys.executable, "-m", "newtlab.newtlink", f"{tmp}/bridge.json"]
            command += ["--lab", "bench"]
        log = Path(tmp) / "relay.log"
        with log.open("w") as err:
            proc = subprocess.Popen([*taskset, *command], stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 10
            while proc.poll() is None and time.monotonic() < deadline:
                if linked(kind, proc, stats):
                    break
                time.sleep(0.01)
            else:
                raise RuntimeError(f"{kind} did not link the endpoints:\n{log.read_text()}")
            yield proc.pid
        finally:
            proc.kill()
            proc.wait()


def linked(kind: str, proc: subprocess.Popen[bytes], stats: Path) -> bool:
    if kind in ("socat", "splice"):  # no stats: they connect both sides at start, then relay
        time.sleep(0.2)
        return proc.poll() is None
    try:
        return bool(query_stats(str(stats))["links"][0]["connected"])
    except (OSError, ValueError):
        return False  # not up yet


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def throughput(kind: str, size: int, seconds: float, write: int = 0) -> dict[str, float]:
    a, z = free_ports(2)
    dial = kind == "direct"  # with no relay the sender dials the receiver itself
    result, go = CTX.Queue(), CTX.Event()
    with endpoints() as start:
        start(receiver, z, result)
        start(sender, z if dial else a, dial, size, write, seconds, go)
        with relay(kind, a, z, pin=False) as pid:
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            go.set()
            total, elapsed = result.get(timeout=seconds + 30)
            cpu = cpu_seconds(pid) - cpu0
            wall = time.perf_counter() - t0
    gbits = total * 8 / elapsed / 1e9 if elapsed else 0.0
    return {
        "gbit_s": gbits,
        "frames_per_s": total / (size + 4) / elapsed if elapsed else 0.0,
        "relay_cpu": cpu / wall,
    }


def latency(kind: str, count: int, pin: bool = True) -> tuple[float, float]:
    a, z = free_ports(2)
    dial = kind == "direct"
    result, go = CTX.Queue(), CTX.Event()
    with endpoints() as start:
        start(echo, z, pin)  # through newtlink it never sees EOF: killed on the way out
        start(pinger, z if dial else a, dial, count, result, go, pin)
        with relay(kind, a, z, pin=pin):
            go.set()
            return result.get(timeout=120)


def idle_cost(links: int = 1000, settle: float = 2.0, seconds: float = 3.0) -> dict[str, float]:
    """One newtlink whose ``links`` links dial ports where nothing listens: its RSS (MiB),
    and its CPU share and dial attempts per second while it keeps redialling."""
    ports = free_ports(2 * links)
    with tempfile.TemporaryDirectory() as tmp:
        config, stats = Path(tmp) / "bridge.json", Path(tmp) / "stats.sock"
        newtlink_config(config, list(zip(ports[::2], ports[1::2], strict=True)), stats)
        proc = subprocess.Popen(
            [sys.executable, "-m", "newtlab.newtlink", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # one "connection refused; retrying" line per side
        )
        try:
            assert proc.stdout is not None
            if not proc.stdout.readline().startswith(b"READY"):
                raise RuntimeError("newtlink did not start")
            time.sleep(settle)  # the redial backoff reaches its 1 s ceiling after ~1.6 s

            def failures() -> int:
                doc = query_stats(str(stats))
                return sum(s["a_dial_failures"] + s["z_dial_failures"] for s in doc["links"])

            dials0, cpu0, t0 = failures(), cpu_seconds(proc.pid), time.perf_counter()
            time.sleep(seconds)
            dials, cpu = failures() - dials0, cpu_seconds(proc.pid) - cpu0
            wall = time.perf_counter() - t0
            status = Path(f"/proc/{proc.pid}/status").read_text()
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return {"rss_mib": rss_kib / 1024, "cpu": cpu / wall, "dials_per_s": dials / wall}


def median_of(repeat: int, measure: Callable[[], dict[str, float]]) -> dict[str, float]:
    runs = [measure() for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per throughput run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (median)")
    parser.add_argument("--pings", type=int, default=20000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so no relay or endpoint outlives the bench.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = ["direct", "splice", "newtlink"] + (["socat"] if shutil.which("socat") else [])
    results: dict[str, Any] = {}
    for kind in kinds:
        entry: dict[str, Any] = {}
        for mode, (size, write) in MODES.items():
            entry[mode] = median_of(
                args.repeat, lambda k=kind, s=size, w=write: throughput(k, s, args.seconds, w)
            )
        p50, p99 = latency(kind, args.pings)
        entry["rtt_p50_us"], entry["rtt_p99_us"] = p50, p99
        entry["rtt_p50_unpinned_us"] = latency(kind, args.pings, pin=False)[0]
        results[kind] = entry
    idle = idle_cost()
    results["newtlink_idle_rss_mib_1000_links"] = idle["rss_mib"]
    results["newtlink_idle_cpu_1000_links"] = idle["cpu"]
    results["newtlink_idle_dials_per_s_1000_links"] = idle["dials_per_s"]
    ratios: dict[str, float] = {}
    for mode in MODES:
        ratios[f"{mode}_vs_direct"] = (
            results["newtlink"][mode]["gbit_s"] / results["direct"][mode]["gbit_s"]
        )
        if "socat" in results:
            ratios[f"{mode}_vs_socat"] = (
                results["newtlink"][mode]["gbit_s"] / results["socat"][mode]["gbit_s"]
            )
    for mode in MODES:
        ratios[f"{mode}_vs_splice"] = (
            results["newtlink"][mode]["gbit_s"] / results["splice"][mode]["gbit_s"]
        )
    ratios["rtt_p50_added_us"] = results["newtlink"]["rtt_p50_us"] - results["direct"]["rtt_p50_us"]
    ratios["rtt_p50_unpinned_added_us"] = (
        results["newtlink"]["rtt_p50_unpinned_us"] - results["direct"]["rtt_p50_unpinned_us"]
    )
    results["ratios"] = ratios
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    print(
        f"{'':10}"
        + "".join(f"{m + ' Gbit/s':>18}" for m in MODES)
        + f"{'RTT p50 µs':>12}{'p99 µs':>9}{'unpinned':>10}{'CPU%/Gbit/s':>13}"
    )
    for kind in kinds:
        r = results[kind]
        bulk = r["bulk"]
        cpu = f"{bulk['relay_cpu'] * 100 / bulk['gbit_s']:.1f}" if kind != "direct" else "-"
        print(
            f"{kind:10}"
            + "".join(f"{r[m]['gbit_s']:18.2f}" for m in MODES)
            + f"{r['rtt_p50_us']:12.1f}{r['rtt_p99_us']:9.1f}{r['rtt_p50_unpinned_us']:10.1f}"
            + f"{cpu:>13}"
        )
    print(
        "64B frames/s: "
        + ", ".join(f"{k} {results[k]['64B']['frames_per_s'] / 1e6:.2f} M" for k in kinds)
    )
    print("newtlink ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    print(
        f"newtlink, 1,000 links dialling ports where nothing listens: "
        f"{idle['rss_mib']:.1f} MiB RSS, {idle['cpu'] * 100:.1f}% CPU, "
        f"{idle['dials_per_s']:.0f} dials/s"
    )


if __name__ == "__main__":
    main()
