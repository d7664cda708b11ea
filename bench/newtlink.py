"""newtlink against direct TCP, a splice relay and socat: throughput, latency, CPU, memory.

Usage: python bench/newtlink.py [--seconds S] [--repeat N] [--pings N] [--quick] [--json]

All traffic is QEMU-framed (4-byte length + frame). Sender, receiver and
relay are separate processes. As in a lab, the endpoints listen like a QEMU
NIC (one peer) and the relay dials both of them: newtlink from its config
(``a_dial``/``z_dial``), socat as ``socat TCP:A TCP:Z``. The endpoints listen
on loopback TCP ports, and for ``newtlink-unix`` on Unix sockets, as newtlab's
VM NICs do (``-netdev stream,server=on``). Sending starts once newtlink's stats say the link is
connected (frames sent before that are dropped by design). Printed side by
side, measured in one run:

* throughput (Gbit/s) for bulk (9,000-byte frames in 1 MiB writes), 1,500-byte
  frames in 64 KiB writes, and 64- and 1,500-byte frames (one send() per
  frame), through: a direct
  loopback connection (no relay: the sender dials the receiver), a plain
  ``os.splice`` relay that never looks at a frame (``splice_relay.py``: the
  reference), socat as a relay, and newtlink. Each run sends for S seconds;
  its Gbit/s are the bytes the receiver got between its first and last byte,
  over that time;
* round-trip latency (p50/p99 µs) of a 64-byte frame, unpinned and every process pinned
  to CPU 0 (unpinned figures mostly measure waking the other CPU);
* relay CPU per Gbit/s (bulk), and the RSS and CPU share of
  one newtlink whose 1,000 links dial ports where nothing listens (it keeps
  redialling every side, backing off to once a second);
* the ratios newtlink/direct, newtlink/splice and newtlink/socat, the round
  trip newtlink adds over direct, and newtlink on Unix sockets against newtlink
  on TCP.

How relay CPU is measured: the relay process's user + system CPU time, all
its threads (``/proc/<pid>/stat``), is sampled every 10 ms during the run and
read at the receiver's first and last byte (interpolated between samples), so
every relay is timed over exactly the window its throughput is measured in.
Nothing after the last byte counts: socat passes the sender's EOF on and the
receiver stops at once, while newtlink (a pulled cable keeps the other side
connected) and the splice relay leave it waiting for a second of silence —
which, counted as the relay's wall time, would have thinned their CPU share.
CPU%/Gbit/s is that share (100 % = one core busy for the whole transfer)
divided by the bulk Gbit/s: % of a core per Gbit/s moved, lower is cheaper.

Baselines, all measured in the same run: the splice relay (what relaying costs
when nothing is looked at), socat, and direct TCP (for the round trip added).
The README's figures are ``python bench/newtlink.py --repeat 3 --pings 10000``
(medians of 3). ``--quick`` runs everything at its smallest, to check that the
bench works (the test suite does); its figures are not worth quoting.
"""

from __future__ import annotations

import argparse
import bisect
import functools
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
import threading
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


Address = int | str  # a TCP port on loopback, or a Unix socket path


def _endpoint_socket(port: Address, dial: bool, ready: Any, nodelay: bool = False) -> socket.socket:
    """Listen on ``port`` like a QEMU NIC and take one peer, or (``dial``) connect to it."""
    if dial:  # direct runs only: the other endpoint is already listening
        ready.set()
        sock = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        sock.settimeout(None)
    elif isinstance(port, str):  # as newtlab's VM NICs: a Unix socket
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(port)
            server.listen(1)
            ready.set()
            sock, _ = server.accept()
        return sock
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


def receiver(port: Address, result: Any, quiet: float, ready: Any) -> None:
    """Puts ``(bytes, first, last)``: what arrived, and when its first and last bytes did
    (``time.perf_counter()``: CLOCK_MONOTONIC on Linux, one clock for every process)."""
    sock = _endpoint_socket(port, False, ready)
    buf = bytearray(1 << 20)
    total, first, last = 0, 0.0, 0.0
    # newtlink keeps this side connected when the sender leaves (a pulled cable), and
    # so does the splice relay: the end of the run is ``quiet`` seconds of silence.
    sock.settimeout(30)
    while True:
        try:
            n = sock.recv_into(buf)
        except TimeoutError:
            break
        if not n:
            break
        sock.settimeout(quiet)
        if not total:
            first = time.perf_counter()
        total += n
        last = time.perf_counter()
    result.put((total, first, last))


def sender(
    port: Address, dial: bool, size: int, write: int, seconds: float, go: Any, ready: Any
) -> None:
    sock = _endpoint_socket(port, dial, ready)
    one = frame(size)
    send: Callable[[bytes], object]
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


def echo(port: Address, pin: bool, ready: Any) -> None:
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


def pinger(
    port: Address, dial: bool, count: int, result: Any, go: Any, pin: bool, ready: Any
) -> None:
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


def _dial(address: Address) -> str:
    return f"unix:{address}" if isinstance(address, str) else f"127.0.0.1:{address}"


def newtlink_config(path: Path, dials: list[tuple[Address, Address]], stats: Path) -> None:
    links = [
        {"a": f"a{i}:e1", "z": f"z{i}:e1", "a_dial": _dial(a), "z_dial": _dial(z)}
        for i, (a, z) in enumerate(dials)
    ]
    path.write_text(json.dumps({"lab": "bench", "links": links, "stats_unix": str(stats)}))


@contextmanager
def relay(kind: str, a: Address, z: Address, pin: bool) -> Iterator[int | None]:
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
    """User + system CPU seconds of process ``pid`` so far, all its threads (0 for None)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuTrace:
    """A process's CPU seconds, sampled every ``interval`` by a thread of this one while
    the trace is open, so that afterwards they can be read at any instant of it: the
    instants that matter (a receiver's first and last byte) are only known at the end."""

    def __init__(self, pid: int | None, interval: float = 0.01) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []  # (perf_counter, CPU seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append((time.perf_counter(), cpu_seconds(self.pid)))
            if self._stop.wait(self.interval):
                self.samples.append((time.perf_counter(), cpu_seconds(self.pid)))
                return

    def __enter__(self) -> CpuTrace:
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def at(self, when: float) -> float:
        """CPU seconds at ``when`` (a ``time.perf_counter()``), interpolated between samples."""
        if not self.samples:
            return 0.0
        i = bisect.bisect_left(self.samples, when, key=lambda sample: sample[0])
        if i == 0:
            return self.samples[0][1]
        if i == len(self.samples):
            return self.samples[-1][1]
        (t0, c0), (t1, c1) = self.samples[i - 1], self.samples[i]
        return c0 + (c1 - c0) * (when - t0) / (t1 - t0) if t1 > t0 else c1

    def between(self, start: float, end: float) -> float:
        return self.at(end) - self.at(start)


@contextmanager
def addresses(kind: str) -> Iterator[tuple[Address, Address]]:
    """The two endpoints' addresses: Unix sockets for newtlink-unix (as newtlab's VM
    NICs), loopback ports for the rest."""
    if kind != "newtlink-unix":
        a, z = free_ports(2)
        yield a, z
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield f"{tmp}/a.nic", f"{tmp}/z.nic"


def throughput(
    kind: str, size: int, seconds: float, write: int = 0, quiet: float = 1.0
) -> dict[str, float]:
    dial = kind == "direct"  # with no relay the sender dials the receiver itself
    result, go = CTX.Queue(), CTX.Event()
    with addresses(kind) as (a, z), endpoints() as start:
        start(receiver, z, result, quiet)
        start(sender, z if dial else a, dial, size, write, seconds, go)
        with relay(kind, a, z, pin=False) as pid, CpuTrace(pid) as cpu:
            go.set()
            total, first, last = result.get(timeout=seconds + 30)
    elapsed = last - first
    if not elapsed:
        return {"gbit_s": 0.0, "frames_per_s": 0.0, "relay_cpu": 0.0}
    return {
        "gbit_s": total * 8 / elapsed / 1e9,
        "frames_per_s": total / (size + 4) / elapsed,
        # The relay's CPU over the very window of the throughput, first byte to last:
        # not the second of silence after it, which only some relays make the receiver wait.
        "relay_cpu": cpu.between(first, last) / elapsed,
    }


def latency(kind: str, count: int, pin: bool = True) -> tuple[float, float]:
    dial = kind == "direct"
    result, go = CTX.Queue(), CTX.Event()
    with addresses(kind) as (a, z), endpoints() as start:
        start(echo, z, pin)  # through newtlink it never sees EOF: killed on the way out
        start(pinger, z if dial else a, dial, count, result, go, pin)
        with relay(kind, a, z, pin=pin):
            go.set()
            p50, p99 = result.get(timeout=120)
    return float(p50), float(p99)


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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, help="per throughput run (2; --quick: 0.2)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (median)")
    parser.add_argument("--pings", type=int, help="round trips per latency run (20000; 200)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test sizes: 0.2 s runs ended by 0.2 s of silence (not 1 s), 200 pings, "
        "a 0.5 s idle-cost window after 0.2 s (checks that the bench works; its figures are "
        "not worth quoting)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 0.2 if args.quick else 2.0
    if args.pings is None:
        args.pings = 200 if args.quick else 20000
    if args.repeat < 1 or args.pings < 1 or args.seconds <= 0:
        parser.error("--repeat and --pings must be at least 1, --seconds above 0")
    quiet = 0.2 if args.quick else 1.0  # the silence that ends a throughput run
    # A SIGTERM unwinds like Ctrl-C, so no relay or endpoint outlives the bench.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = ["direct", "splice", "newtlink", "newtlink-unix"]
    kinds += ["socat"] if shutil.which("socat") else []
    results: dict[str, Any] = {}
    for kind in kinds:
        entry: dict[str, Any] = {}
        for mode, (size, write) in MODES.items():
            run = functools.partial(throughput, kind, size, args.seconds, write, quiet)
            entry[mode] = median_of(args.repeat, run)
        p50, p99 = latency(kind, args.pings)
        entry["rtt_p50_us"], entry["rtt_p99_us"] = p50, p99
        entry["rtt_p50_unpinned_us"] = latency(kind, args.pings, pin=False)[0]
        results[kind] = entry
    idle = idle_cost(settle=0.2, seconds=0.5) if args.quick else idle_cost()
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
    for mode in MODES:  # newtlab's VM NICs are Unix sockets: what that costs or gains
        ratios[f"{mode}_unix_vs_tcp"] = (
            results["newtlink-unix"][mode]["gbit_s"] / results["newtlink"][mode]["gbit_s"]
        )
    ratios["rtt_p50_unix_minus_tcp_us"] = (
        results["newtlink-unix"]["rtt_p50_us"] - results["newtlink"]["rtt_p50_us"]
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
        f"{'':14}"
        + "".join(f"{m + ' Gbit/s':>18}" for m in MODES)
        + f"{'RTT p50 µs':>12}{'p99 µs':>9}{'unpinned':>10}{'CPU%/Gbit/s':>13}"
    )
    for kind in kinds:
        r = results[kind]
        bulk = r["bulk"]
        cpu = f"{bulk['relay_cpu'] * 100 / bulk['gbit_s']:.1f}" if kind != "direct" else "-"
        print(
            f"{kind:14}"
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
