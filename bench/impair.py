"""Link shaping in newtlink: asked against measured delay, jitter, loss and rate, and what
a running capture costs — all through a real newtlink process, in one run.

Usage: python bench/impair.py [--seconds S] [--quick] [--json]

Endpoints and traffic are bench/newtlink.py's (QEMU-framed, separate processes,
the bridge dialling both endpoints); settings go through the bridge's control
socket as ``newtlab link set`` sends them. Measured, each against its baseline:

* delay and jitter: 200 round trips of a 64-byte frame, the A→Z direction
  delayed; the p50 and spread of the round trip above the baseline: the p50 of
  300 round trips over the same kind of link unimpaired, in the same run;
* loss: 40,000 64-byte frames paced at 20,000 a second, the share that never
  arrives, against the share asked;
* rate: 9,000-byte frames in 1 MiB writes for S seconds (3), as fast as the
  sender can, against a rate of 100 and 500 Mbit/s: what the receiver gets,
  against the rate asked;
* capture: the bulk throughput of an unimpaired link with a capture streaming
  its pcap to a reader that discards it, as a ratio to the baseline: the same
  link with nobody capturing, in the same run.

The README's figures are ``python bench/impair.py`` with its defaults.
``--quick`` runs everything at its smallest, to check that the bench works
(the test suite does); its figures are not worth quoting.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench import newtlink as nl
else:  # run as a script, this directory is no package: bench/newtlink.py by its path
    _spec = importlib.util.spec_from_file_location(
        "bench_newtlink", Path(__file__).with_name("newtlink.py")
    )
    assert _spec and _spec.loader
    nl = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(nl)


@contextmanager
def bridge(a: int, z: int) -> Iterator[Path]:
    """newtlink dialling the endpoints on ``a`` and ``z``; yields its control socket."""
    with tempfile.TemporaryDirectory() as tmp:
        stats, control = Path(tmp) / "stats.sock", Path(tmp) / "control.sock"
        config = {"lab": "bench", "stats_unix": str(stats), "control_unix": str(control),
                  "links": [{"a": "a:e1", "z": "z:e1", "a_dial": f"127.0.0.1:{a}",
                             "z_dial": f"127.0.0.1:{z}"}]}  # fmt: skip
        (Path(tmp) / "bridge.json").write_text(json.dumps(config))
        proc = subprocess.Popen(
            [sys.executable, "-m", "newtlab.newtlink", f"{tmp}/bridge.json", "--lab", "b"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not nl.linked("newtlink", proc, stats):
                time.sleep(0.01)
            yield control
        finally:
            proc.kill()
            proc.wait()


def ask(control: Path, request: dict[str, Any]) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(control))
    sock.sendall(json.dumps(request).encode() + b"\n")
    answer = b""
    while not answer.endswith(b"\n"):
        answer += sock.recv(1)
    assert json.loads(answer)["ok"], answer
    return sock


def impair(control: Path, settings: dict[str, Any]) -> None:
    ask(control, {"op": "set", "link": "a:e1", "settings": {"a": settings}}).close()


def round_trips(settings: dict[str, Any], count: int) -> list[float]:
    a, z = nl.free_ports(2)
    result, go = nl.CTX.Queue(), nl.CTX.Event()
    samples: list[float] = []
    with nl.endpoints() as start:
        start(nl.echo, z, False)
        start(_pinger_all, a, count, result, go)
        with bridge(a, z) as control:
            if settings:
                impair(control, settings)
            go.set()
            samples = result.get(timeout=count * 0.2 + 60)
    return samples


def _pinger_all(port: int, count: int, result: Any, go: Any, ready: Any) -> None:
    sock = nl._endpoint_socket(port, False, ready, nodelay=True)
    go.wait(30)
    result.put([seconds * 1000 for seconds in nl.round_trips(sock, count)])


def _paced_sender(port: int, frames: int, rate: int, go: Any, ready: Any) -> None:
    sock = nl._endpoint_socket(port, False, ready)
    one = nl.frame(64)
    go.wait(30)
    start = time.perf_counter()
    for i in range(frames):
        while time.perf_counter() - start < i / rate:
            pass
        sock.send(one)
    time.sleep(1)


def loss(fraction: float, frames: int, quiet: float = 1.0) -> float:
    a, z = nl.free_ports(2)
    result, go = nl.CTX.Queue(), nl.CTX.Event()
    with nl.endpoints() as start:
        start(nl.receiver, z, result, quiet)
        start(_paced_sender, a, frames, 20000, go)
        with bridge(a, z) as control:
            impair(control, {"loss": fraction})
            go.set()
            total, _, _ = result.get(timeout=frames / 20000 + 60)
    return 1 - float(total) / 68 / frames


def bulk(
    seconds: float, settings: dict[str, Any], capture: bool = False, quiet: float = 1.0
) -> float:
    """Gbit/s the receiver gets of a bulk sender (9,000-byte frames in 1 MiB writes)."""
    a, z = nl.free_ports(2)
    result, go = nl.CTX.Queue(), nl.CTX.Event()
    with nl.endpoints() as start:
        start(nl.receiver, z, result, quiet)
        start(nl.sender, a, False, 9000, 1 << 20, seconds, go)
        with bridge(a, z) as control:
            if settings:
                impair(control, settings)
            reader = None
            if capture:
                tap = ask(control, {"op": "capture", "link": "a:e1"})
                reader = threading.Thread(target=_discard, args=(tap,), daemon=True)
                reader.start()
            go.set()
            total, first, last = result.get(timeout=seconds + 60)
    return float(total) * 8 / (last - first) / 1e9 if last > first else 0.0


def _discard(sock: socket.socket) -> None:
    while sock.recv(1 << 20):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, help="per bulk run (3; --quick: 0.2)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test sizes: 30 round trips unimpaired and 20 per delay (not 300 and 200), "
        "2,000 frames per loss run (not 40,000), 0.2 s bulk runs, each run ended by 0.2 s "
        "of silence (not 1 s) (checks that the bench works; its figures are not worth "
        "quoting)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else 0.2 if args.quick else 3.0
    pings, frames, quiet = (20, 2000, 0.2) if args.quick else (200, 40000, 1.0)
    if seconds <= 0:
        parser.error("--seconds must be above 0")
    rows: dict[str, Any] = {}
    base = round_trips({}, pings * 3 // 2)
    base_p50 = statistics.median(base)
    for delay, jitter in ((0.020, 0.0), (0.060, 0.0), (0.020, 0.005)):
        samples = [s - base_p50 for s in round_trips({"delay": delay, "jitter": jitter}, pings)]
        rows[f"delay {delay * 1000:g}ms ±{jitter * 1000:g}ms"] = {
            "asked_ms": delay * 1000, "measured_p50_ms": round(statistics.median(samples), 2),
            "asked_jitter_sd_ms": round(jitter * 1000 / 3**0.5, 2),
            "measured_sd_ms": round(statistics.pstdev(samples), 2)}  # fmt: skip
    for fraction in (0.01, 0.1):
        rows[f"loss {fraction:.0%}"] = {
            "asked": fraction, "measured": round(loss(fraction, frames, quiet), 4)}  # fmt: skip
    for mbit in (100, 500):
        got = bulk(seconds, {"rate": mbit * 10**6}, quiet=quiet)
        rows[f"rate {mbit}mbit"] = {"asked_mbit": mbit, "measured_mbit": round(got * 1000, 1)}
    plain = bulk(seconds, {}, quiet=quiet)
    captured = bulk(seconds, {}, capture=True, quiet=quiet)
    rows["bulk, nobody capturing"] = {"gbit_s": round(plain, 2)}
    rows["bulk, a capture running"] = {"gbit_s": round(captured, 2),
                                       "ratio": round(captured / plain, 2)}  # fmt: skip
    rows["unimpaired 64B round trip"] = {"p50_ms": round(base_p50, 3)}
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for name, row in rows.items():
        print(f"{name:28} " + "  ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
