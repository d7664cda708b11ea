"""CLI start-up: each quick command's wall time as a ratio to importing its toolkit.

Usage: python bench/cli.py [--repeat N] [--json]

The commands: ``--help``, ``version``, ``list`` and ``platforms``, and two TAB
presses as bash makes them (the CLI run with ``_NEWTLAB_COMPLETE``): completing
a command name, and completing a node name of a deployed lab (its state, for
``examples/line3``, written into the bench's NEWTLAB_HOME first).

Measures the wall time of each command, from starting its interpreter to its
exit: medians of N runs, each a fresh process (this interpreter, with
bytecode cached as for users), with an empty NEWTLAB_HOME. The baseline in
the same run is ``python -c "import rich, typer"``: what any command of a
typer + rich CLI costs before it does anything. Target: the quick commands
(``--help``, ``version``, ``list`` with no labs) and both TAB presses at ≤ 2× it. The README's
figures are ``python bench/cli.py --repeat 15``.
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
from datetime import UTC, datetime
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "line3"
TAB = {"_NEWTLAB_COMPLETE": "complete_bash"}
# name → (argv, extra environment, what stdout must hold)
COMMANDS: dict[str, tuple[list[str], dict[str, str], str]] = {
    "baseline: import rich, typer": (["-c", "import rich, typer"], {}, ""),
    "newtlab --help": (["-m", "newtlab", "--help"], {}, "Usage"),
    "newtlab version": (["-m", "newtlab", "version"], {}, "newtlab"),
    "newtlab list": (["-m", "newtlab", "list"], {}, ""),
    "newtlab platforms": (["-m", "newtlab", "platforms"], {}, "sonic-vs"),
    "TAB: newtlab sta": (
        ["-m", "newtlab"], {**TAB, "COMP_WORDS": "newtlab sta", "COMP_CWORD": "1"}, "status"
    ),
    "TAB: newtlab ssh r": (
        ["-m", "newtlab"], {**TAB, "COMP_WORDS": "newtlab ssh r", "COMP_CWORD": "2"}, "r3"
    ),
}  # fmt: skip


def deployed_state(home: str) -> None:
    """``examples/line3``'s state as deploy writes it, under NEWTLAB_HOME ``home`` (for
    the node-name completion); nothing runs."""
    os.environ["NEWTLAB_HOME"] = home
    from newtlab.home import lab_dir
    from newtlab.lab import Lab
    from newtlab.state import LabState, NodeState, save_state

    plan = Lab.load(EXAMPLE).plan
    lab_dir(plan.lab).mkdir(parents=True)
    nodes = {n.name: NodeState() for n in plan.nodes}
    save_state(LabState(name=plan.lab, created=datetime.now(UTC), spec_dir=plan.spec_dir,
                        plan=plan, nodes=nodes))  # fmt: skip


def wall(argv: list[str], env: dict[str, str], repeat: int, expect: str = "") -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, *argv], env=env, capture_output=True, text=True, check=True
        )
        times.append(time.perf_counter() - start)
        if expect not in done.stdout:
            raise SystemExit(f"{argv}: {expect!r} not in its output: {done.stdout[:200]!r}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as labs:
        env = {**os.environ, "NEWTLAB_HOME": home, "COLUMNS": "100"}
        # Users run from cached bytecode; without it every run would compile newtlab anew.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        deployed_state(labs)  # `list` runs with no lab, a TAB press with one
        wall(COMMANDS["newtlab version"][0], env, 2)  # warm the file cache and bytecode
        seconds = {}
        for name, (argv, extra, expect) in COMMANDS.items():
            where = {"NEWTLAB_HOME": labs} if name.startswith("TAB") else {}
            seconds[name] = wall(argv, {**env, **extra, **where}, args.repeat, expect)
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
