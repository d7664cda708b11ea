"""Every bench still runs: those that need no VM at their smallest settings, the rest to --help.

Each bench runs as a script (``python bench/NAME.py``, as its docstring says), in a
session of its own: whatever it leaves running (a relay, an endpoint) is found, killed
and reported, and on a failure or a timeout the whole session is killed.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _group(pgid: int) -> list[str]:
    """The live processes of process group ``pgid``: ``"PID COMMAND"`` each."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            found.append(f"{entry.name} {name}")
    return found


def _kill_group(pgid: int) -> list[str]:
    """Kill every process left in group ``pgid``; what was left."""
    left = _group(pgid)
    deadline = time.monotonic() + 5
    while _group(pgid) and time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    return left


def run_bench(script: str, *args: str, timeout: float = 120) -> str:
    """Run ``bench/<script> ARGS``; its stdout, once it exited 0 leaving nothing behind."""
    # Files, not pipes: a process it left behind holding them would not end the wait.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / script), *args],
            stdout=out,
            stderr=err,
            start_new_session=True,  # its group: every process it starts, to find and kill
        )
        try:
            proc.wait(timeout=timeout)
        finally:
            left = _kill_group(proc.pid)
            proc.kill()
            proc.wait()
        out.seek(0)
        err.seek(0)
        assert proc.returncode == 0, f"bench/{script} exited {proc.returncode}:\n{err.read()}"
        assert not left, f"bench/{script} left these running: {left}"
        return out.read()


def number(text: str) -> float:
    value = float(text)
    assert math.isfinite(value), text
    return value


def positive(text: str) -> float:
    value = number(text)
    assert value > 0, text
    return value


# -- the benches that need no VM ---------------------------------------------------------

CLI_ROW = re.compile(r"^(?P<name>.+?)\s+(?P<ms>[\d.]+) ms\s+(?P<ratio>[\d.]+)×$")


def test_cli_bench() -> None:
    rows = {}
    for line in run_bench("cli.py", "--repeat", "1").splitlines():
        match = CLI_ROW.match(line)
        assert match, f"not a row of the table: {line!r}"
        positive(match["ms"])
        rows[match["name"]] = positive(match["ratio"])
    assert set(rows) == {
        "baseline: import rich, typer",
        "newtlab --help",
        "newtlab version",
        "newtlab list",
        "newtlab platforms",
        "TAB: newtlab sta",
        "TAB: newtlab ssh r",
    }
    assert rows["baseline: import rich, typer"] == 1.0


def test_plan_scale_bench() -> None:
    small = ("--nodes", "20", "--links", "30", "--repeat", "1")
    result = json.loads(run_bench("plan_scale.py", *small, "--json"))
    assert (result["nodes"], result["links"], result["servers"]) == (20, 30, 4)
    for key in ("load_s", "plan_s", "load_plus_plan_s", "plan_over_load"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert result["meets_target"] is True  # 20 nodes: nowhere near the 1 s of 1,000
    table = run_bench("plan_scale.py", *small)
    assert table.startswith("20 nodes, 30 links, 4 servers (median of 1)\n"), table
    ratio = re.search(r"plan \(\+ to_json\)\s+[\d.]+ ms\s+\(([\d.]+)x load\)", table)
    assert ratio, table
    positive(ratio[1])
    assert "target < 1000 ms: met" in table, table


KINDS = ("direct", "splice", "newtlink", "newtlink-unix", "socat")
MODES = ("bulk", "1500B/64K", "1500B", "64B")


def test_newtlink_bench() -> None:
    out = run_bench("newtlink.py", "--quick")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["bulk", "Gbit/s"], out
    end = next(i for i, line in enumerate(lines) if line.startswith("64B frames/s: "))
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:end]}
    assert set(rows) <= set(KINDS), out
    assert {"direct", "splice", "newtlink", "newtlink-unix"} <= set(rows), out  # socat if there
    for kind, cells in rows.items():
        assert len(cells) == len(MODES) + 4, f"{kind}: {cells}"
        for cell in cells[: len(MODES) + 3]:  # Gbit/s per mode, RTT p50, p99, unpinned p50
            positive(cell)
        if kind == "direct":
            assert cells[-1] == "-"  # no relay, no relay CPU
        else:
            positive(cells[-1])  # CPU %/Gbit/s
    ratios = next(line for line in lines if line.startswith("newtlink ratios: "))
    pairs = dict(p.rsplit(" ", 1) for p in ratios.removeprefix("newtlink ratios: ").split(", "))
    for mode in MODES:
        positive(pairs[f"{mode}_vs_direct"])
        positive(pairs[f"{mode}_vs_splice"])
    number(pairs["rtt_p50_added_us"])  # it may come out negative on a noisy machine
    idle = re.search(
        r"1,000 links dialling ports where nothing listens: ([\d.]+) MiB RSS, ([\d.]+)% CPU, "
        r"(\d+) dials/s",
        out,
    )
    assert idle, out
    positive(idle[1])
    positive(idle[3])


def test_impair_bench() -> None:
    out = run_bench("impair.py", "--quick")
    rows: dict[str, dict[str, float]] = {}
    for line in out.splitlines():  # "NAME (28 wide) KEY VALUE  KEY VALUE ..."
        words = line[28:].split()
        assert len(words) % 2 == 0, line
        pairs = zip(words[::2], words[1::2], strict=True)
        rows[line[:28].strip()] = {key: number(value) for key, value in pairs}
    assert len(rows) == 10, out
    # Generous bounds (a busy machine, 20 round trips, 2,000 frames), yet no shaping fails.
    for name in ("delay 20ms ±0ms", "delay 60ms ±0ms", "delay 20ms ±5ms"):
        asked, measured = rows[name]["asked_ms"], rows[name]["measured_p50_ms"]
        assert asked / 2 < measured < asked * 3, f"{name}: {measured} ms"
    assert 0 <= rows["loss 1%"]["measured"] < 0.5
    assert 0.02 < rows["loss 10%"]["measured"] < 0.5
    for name in ("rate 100mbit", "rate 500mbit"):
        asked, measured = rows[name]["asked_mbit"], rows[name]["measured_mbit"]
        assert 0 < measured < asked * 2, f"{name}: {measured} Mbit/s"
    assert rows["bulk, nobody capturing"]["gbit_s"] > 0
    assert rows["bulk, a capture running"]["ratio"] > 0
    assert rows["unimpaired 64B round trip"]["p50_ms"] > 0


# -- the benches that boot VMs: they still start ------------------------------------------


@pytest.mark.parametrize(
    "script", ["boot.py", "deploy.py", "router.py", "snapshot.py", "vm_link.py"]
)
def test_vm_bench_help(script: str) -> None:
    out = run_bench(script, "--help", timeout=60)
    assert out.startswith("usage: "), out
    assert "--json" in out
