"""newtlink against a direct connection and socat: throughput, latency, CPU, memory.

Usage: python bench/newtlink.py [--seconds S] [--repeat N] [--json]

All traffic is QEMU-framed (4-byte length + frame). Sender, receiver and
relay are separate processes. Printed side by side, measured in one run:

* throughput (Gbit/s) for bulk (9,000-byte frames in 1 MiB writes) and for
  64- and 1,500-byte frames (one send() per frame), through: a direct
  loopback connection (no relay), socat as a relay, and newtlink;
* round-trip latency (p50/p99 µs) of a 64-byte frame, every process pinned
  to CPU 0 (unpinned figures mostly measure waking the other CPU);
* relay CPU per Gbit/s (from /proc/<pid>/stat) and the RSS of one newtlink
  listening on 1,000 links with no peers;
* the ratios newtlink/direct and newtlink/socat.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
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

HEAD = struct.Struct(">I")
MODES = {"bulk": 9000, "1500B": 1500, "64B": 64}
CLK_TCK = os.sysconf("SC_CLK_TCK")


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


# -- endpoints (run in child processes) -------------------------------------------------


def _endpoint_socket(
    listen: int | None, connect: int | None, nodelay: bool = False
) -> socket.socket:
    if listen is not None:
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", listen))
            server.listen(1)
            sock, _ = server.accept()
    else:
        assert connect is not None
        deadline = time.monotonic() + 10
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", connect))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    if nodelay:  # latency runs only: QEMU's socket netdev does not set it either
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def receiver(listen: int | None, connect: int | None, result: Any, ready: Any) -> None:
    sock = _endpoint_socket(listen, connect) if connect else None
    ready.set()
    if sock is None:
        sock = _endpoint_socket(listen, None)
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


def sender(port: int, size: int, seconds: float) -> None:
    sock = _endpoint_socket(None, port)
    one = frame(size)
    if size >= 9000:
        payload, send = one * ((1 << 20) // len(one)), sock.sendall
    else:
        payload, send = one, sock.send  # one send() per frame, as a VM's NIC does
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(256):
            send(payload)
    sock.shutdown(socket.SHUT_WR)
    sock.close()


def echo(listen: int | None, connect: int | None, ready: Any) -> None:
    os.sched_setaffinity(0, {0})
    sock = _endpoint_socket(listen, connect, nodelay=True) if connect else None
    ready.set()
    if sock is None:
        sock = _endpoint_socket(listen, None, nodelay=True)
    while True:
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data)


def pinger(port: int, count: int, result: Any) -> None:
    os.sched_setaffinity(0, {0})
    sock = _endpoint_socket(None, port, nodelay=True)
    one = frame(64)
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        sock.sendall(one)
        got = 0
        while got < len(one):
            got += len(sock.recv(65536))
        samples.append(time.perf_counter() - t0)
    sock.close()
    samples.sort()
    result.put((samples[len(samples) // 2] * 1e6, samples[int(len(samples) * 0.99)] * 1e6))


# -- relays ------------------------------------------------------------------------------


@contextmanager
def relay(kind: str, pin: bool) -> Iterator[tuple[int, int, int | None]]:
    """(port the sender connects to, port of the receiver side, relay pid)."""
    taskset = ["taskset", "-c", "0"] if pin else []
    if kind == "direct":
        (port,) = free_ports(1)
        yield port, port, None
        return
    if kind == "socat":
        listen, target = free_ports(2)
        proc = subprocess.Popen(
            [
                *taskset,
                "socat",
                f"TCP-LISTEN:{listen},reuseaddr,nodelay",
                f"TCP:127.0.0.1:{target},nodelay",
            ]
        )
        time.sleep(0.2)
        try:
            yield listen, target, proc.pid
        finally:
            proc.kill()
            proc.wait()
        return
    a, z = free_ports(2)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bridge.json"
        config.write_text(
            json.dumps(
                {"lab": "bench", "links": [{"a": "s:e1", "z": "r:e1", "a_port": a, "z_port": z}]}
            )
        )
        proc = subprocess.Popen(
            [
                *taskset,
                sys.executable,
                "-m",
                "newtlab.runtime.newtlink",
                str(config),
                "--lab",
                "bench",
            ],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        proc.stdout.readline()
        try:
            yield a, z, proc.pid
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def throughput(kind: str, size: int, seconds: float) -> dict[str, float]:
    ctx = mp.get_context("fork")
    with relay(kind, pin=False) as (send_port, recv_port, pid):
        result, ready = ctx.Queue(), ctx.Event()
        # The receiver listens for direct/socat and connects to newtlink's Z side.
        listen, connect = (None, recv_port) if kind == "newtlink" else (recv_port, None)
        rx = ctx.Process(target=receiver, args=(listen, connect, result, ready))
        rx.start()
        ready.wait(10)
        time.sleep(0.05)
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        tx = ctx.Process(target=sender, args=(send_port, size, seconds))
        tx.start()
        tx.join()
        total, elapsed = result.get(timeout=30)
        cpu = cpu_seconds(pid) - cpu0
        wall = time.perf_counter() - t0
        rx.join()
    gbits = total * 8 / elapsed / 1e9 if elapsed else 0.0
    return {
        "gbit_s": gbits,
        "frames_per_s": total / (size + 4) / elapsed if elapsed else 0.0,
        "relay_cpu": cpu / wall,
    }


def latency(kind: str, count: int) -> tuple[float, float]:
    ctx = mp.get_context("fork")
    with relay(kind, pin=True) as (send_port, recv_port, _):
        result, ready = ctx.Queue(), ctx.Event()
        listen, connect = (None, recv_port) if kind == "newtlink" else (recv_port, None)
        server = ctx.Process(target=echo, args=(listen, connect, ready))
        server.start()
        ready.wait(10)
        client = ctx.Process(target=pinger, args=(send_port, count, result))
        client.start()
        p50, p99 = result.get(timeout=120)
        client.join()
        server.kill()  # through newtlink it never sees EOF: the bridge keeps its side
        server.join()
    return p50, p99


def idle_rss(links: int = 1000) -> float:
    """RSS (MiB) of one newtlink listening on ``links`` links with no peers."""
    ports = free_ports(2 * links)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bridge.json"
        config.write_text(
            json.dumps(
                {
                    "lab": "bench",
                    "links": [
                        {
                            "a": f"a{i}:e1",
                            "z": f"z{i}:e1",
                            "a_port": ports[2 * i],
                            "z_port": ports[2 * i + 1],
                        }
                        for i in range(links)
                    ],
                }
            )
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "newtlab.runtime.newtlink", str(config)], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        proc.stdout.readline()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        proc.kill()
        proc.wait()
        proc.stdout.close()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return rss_kib / 1024


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
    kinds = ["direct", "newtlink"] + (["socat"] if shutil.which("socat") else [])
    results: dict[str, Any] = {}
    for kind in kinds:
        entry: dict[str, Any] = {}
        for mode, size in MODES.items():
            entry[mode] = median_of(
                args.repeat, lambda k=kind, s=size: throughput(k, s, args.seconds)
            )
        p50, p99 = latency(kind, args.pings)
        entry["rtt_p50_us"], entry["rtt_p99_us"] = p50, p99
        results[kind] = entry
    results["newtlink_idle_rss_mib_1000_links"] = idle_rss()
    ratios: dict[str, float] = {}
    for mode in MODES:
        ratios[f"{mode}_vs_direct"] = (
            results["newtlink"][mode]["gbit_s"] / results["direct"][mode]["gbit_s"]
        )
        if "socat" in results:
            ratios[f"{mode}_vs_socat"] = (
                results["newtlink"][mode]["gbit_s"] / results["socat"][mode]["gbit_s"]
            )
    ratios["rtt_p50_added_us"] = results["newtlink"]["rtt_p50_us"] - results["direct"]["rtt_p50_us"]
    results["ratios"] = ratios
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    print(
        f"{'':10}"
        + "".join(f"{m + ' Gbit/s':>16}" for m in MODES)
        + f"{'RTT p50 µs':>12}{'p99 µs':>9}{'CPU%/Gbit/s':>13}"
    )
    for kind in kinds:
        r = results[kind]
        bulk = r["bulk"]
        cpu = f"{bulk['relay_cpu'] * 100 / bulk['gbit_s']:.1f}" if kind != "direct" else "-"
        print(
            f"{kind:10}"
            + "".join(f"{r[m]['gbit_s']:16.2f}" for m in MODES)
            + f"{r['rtt_p50_us']:12.1f}{r['rtt_p99_us']:9.1f}{cpu:>13}"
        )
    print(
        "64B frames/s: "
        + ", ".join(f"{k} {results[k]['64B']['frames_per_s'] / 1e6:.2f} M" for k in kinds)
    )
    print("newtlink ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    rss = results["newtlink_idle_rss_mib_1000_links"]
    print(f"newtlink RSS, 1,000 links listening, no peers: {rss:.1f} MiB")


if __name__ == "__main__":
    main()
