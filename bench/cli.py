"""CLI start-up: each quick command's wall time as a ratio to importing its toolkit.

Usage: python bench/cli.py [--repeat N] [--json]

The baseline in the same run is ``python -c "import rich, typer"``: what any
command of a typer + rich CLI costs before it does anything. Target: the
quick commands (``--help``, ``version``, ``list`` with no labs) at ≤ 2× it.
Medians of N runs, each a fresh process, with an empty NEWTLAB_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "baseline: import rich, typer": ["-c", "import rich, typer"],
    "newtlab --help": ["-m", "newtlab", "--help"],
    "newtlab version": ["-m", "newtlab", "version"],
    "newtlab list": ["-m", "newtlab", "list"],
    "newtlab platforms": ["-m", "newtlab", "platforms"],
}


def wall(argv: list[str], env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "NEWTLAB_HOME": home, "COLUMNS": "100"}
        # Users run from cached bytecode; without it every run would compile newtlab anew.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        wall(COMMANDS["newtlab version"], env, 2)  # warm the file cache and bytecode
        seconds = {name: wall(argv, env, args.repeat) for name, argv in COMMANDS.items()}
    base = seconds["baseline: import rich, typer"]
    rows = {
        name: {"seconds": round(s, 3), "ratio": round(s / base, 2)} for name, s in seconds.items()
    }
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for name, row in rows.items():
        print(f"{name:32} {row['seconds'] * 1000:7.0f} ms  {row['ratio']:5.2f}×")


if __name__ == "__main__":
    main()
