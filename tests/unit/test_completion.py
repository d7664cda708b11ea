"""Shell completion: commands, options, lab names and the current lab's node names, as
bash and zsh ask for them (typer's protocol: the CLI run with ``_NEWTLAB_COMPLETE``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from specfactory import deployed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def complete(shell: str, words: str) -> list[str]:
    """What the CLI offers for ``words`` (the last one being completed)."""
    env = {**os.environ, "_NEWTLAB_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        env |= {"COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    else:
        env |= {"_TYPER_COMPLETE_ARGS": words}
    result = subprocess.run(
        [sys.executable, "-m", "newtlab"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    if shell == "bash":
        return result.stdout.split()
    # zsh: _arguments '*: :(("name":"help" … one per line, or "name" with no help
    return re.findall(r'^(?:_arguments .*?\(\()?"([^"]*)"', result.stdout, re.MULTILINE)


@pytest.fixture
def labs() -> None:
    deployed(EXAMPLES / "line3")
    deployed(EXAMPLES / "hosts2")


@pytest.mark.usefixtures("labs")
@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_commands_options_labs_and_nodes_complete(shell: str) -> None:
    assert complete(shell, "newtlab sta") == ["status", "start"]
    assert complete(shell, "newtlab link s") == ["set", "show"]
    assert complete(shell, "newtlab deploy --boot") == ["--boot-parallel"]
    assert complete(shell, "newtlab status ") == ["hosts2", "line3"]
    assert complete(shell, "newtlab destroy l") == ["line3"]
    # a VM command: the VMs of every lab; ssh also reaches virtual hosts
    assert complete(shell, "newtlab stop r") == ["r1", "r2", "r3"]
    assert complete(shell, "newtlab ssh h") == ["host1", "host2", "hostvm-0"]
    assert complete(shell, "newtlab console --lab hosts2 ") == ["hostvm-0", "r1"]


def test_completion_scripts_name_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "newtlab", "--show-completion"],
        env={**os.environ, "SHELL": "/bin/bash"}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "_NEWTLAB_COMPLETE=complete_bash" in result.stdout
    assert "complete -o default -F _newtlab_completion newtlab" in result.stdout
