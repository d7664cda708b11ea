"""Quick commands import only what they use (their speed is measured by bench/cli.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# What the quick commands must not load: a parameter converter, the rich help
# renderer's Markdown parser, the spec and plan models, the runtime.
HEAVY = ["pydantic", "rich.markdown", "newtlab.spec.models", "newtlab.plan.model", "asyncssh"]

PROBE = """
import json, sys
from newtlab.cli import main
sys.argv = ["newtlab", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print("\\nMODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def loaded_by(args: list[str], home: Path) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env={"NEWTLAB_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(home)},
        timeout=60,
    )
    line = result.stderr.rsplit("MODULES ", 1)[-1]
    return set(json.loads(line))


@pytest.mark.parametrize("args", [["--help"], ["version"], ["list"], ["deploy", "--help"]])
def test_quick_commands_load_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    loaded = loaded_by(args, tmp_path)
    assert "newtlab.cli" in loaded  # the probe ran the CLI
    assert [m for m in HEAVY if m in loaded] == []


def test_a_planning_command_does_load_the_models(tmp_path: Path) -> None:
    """The check above can see a heavy import when one happens."""
    loaded = loaded_by(["platforms"], tmp_path)
    assert "newtlab.spec.models" in loaded
