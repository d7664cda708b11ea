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


def loaded_by(args: list[str], home: Path, **env: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env={"NEWTLAB_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(home), **env},
        timeout=60,
    )
    line = result.stderr.rsplit("MODULES ", 1)[-1]
    return set(json.loads(line))


@pytest.mark.parametrize("args", [["--help"], ["version"], ["list"], ["deploy", "--help"]])
def test_quick_commands_load_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    loaded = loaded_by(args, tmp_path)
    assert "newtlab.cli" in loaded  # the probe ran the CLI
    assert [m for m in HEAVY if m in loaded] == []


def test_a_tab_press_loads_nothing_heavy(tmp_path: Path) -> None:
    """Completing a node name reads the lab's state as plain JSON, not through the models."""
    (tmp_path / "labs" / "lab1").mkdir(parents=True)
    state = {"plan": {"nodes": [{"name": "r1", "hosts": []}]}}
    (tmp_path / "labs" / "lab1" / "state.json").write_text(json.dumps(state))
    words = {"_NEWTLAB_COMPLETE": "complete_bash", "COMP_WORDS": "newtlab ssh ", "COMP_CWORD": "2"}
    loaded = loaded_by([], tmp_path, **words)
    assert "newtlab.cli" in loaded
    assert [m for m in HEAVY if m in loaded] == []


def test_a_planning_command_does_load_the_models(tmp_path: Path) -> None:
    """The check above can see a heavy import when one happens."""
    loaded = loaded_by(["platforms"], tmp_path)
    assert "newtlab.spec.models" in loaded
