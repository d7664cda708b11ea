"""No warning of a dependency reaches a user's terminal: a command that loads asyncssh,
run in a fresh process with Python's default warning filters, prints nothing on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "line3"

# `newtlab plan` through the CLI's own entry point, then whether asyncssh was loaded:
# the check is worth something only if the command really imported it.
PROGRAM = f"""
import sys
sys.argv = ["newtlab", "plan", "-S", {str(EXAMPLE)!r}, "--no-probe"]
from newtlab.cli import main
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print("asyncssh loaded:", "asyncssh" in sys.modules)
"""


def test_a_command_that_loads_asyncssh_prints_nothing_on_stderr(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NEWTLAB_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout.rstrip().endswith("asyncssh loaded: True"), result.stdout
    assert result.stderr == ""
