"""Lab state on disk and how commands find their lab."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from newtlab.errors import LabStateError
from newtlab.home import list_labs
from newtlab.state import LabState, find_lab, find_lab_for_node, load_state
from specfactory import FIXTURES
from specfactory import deployed as deployed_state


def deployed(example: str, name: str | None = None) -> LabState:
    return deployed_state(FIXTURES / example / "specs", name)


def test_state_round_trips_privately() -> None:
    state = deployed("3node-ngdp")
    again = load_state("3node-ngdp")
    assert again == state
    directory = Path(os.environ["NEWTLAB_HOME"]) / "labs" / "3node-ngdp"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "state.json").stat().st_mode) == 0o600
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_missing_and_corrupt_state() -> None:
    with pytest.raises(LabStateError, match="lab 'nope' not found"):
        load_state("nope")
    deployed("1node-vs")
    path = Path(os.environ["NEWTLAB_HOME"]) / "labs" / "1node-vs" / "state.json"
    path.write_text("{}")
    with pytest.raises(LabStateError, match="unreadable"):
        load_state("1node-vs")


def test_find_lab_by_name_or_the_only_one() -> None:
    with pytest.raises(LabStateError, match="no lab is deployed"):
        find_lab(None)
    deployed("3node-ngdp")
    assert find_lab(None) == "3node-ngdp"
    deployed("4node-ngdp")
    assert list_labs() == ["3node-ngdp", "4node-ngdp"]
    with pytest.raises(LabStateError, match="several labs are deployed"):
        find_lab(None)
    assert find_lab("4node-ngdp") == "4node-ngdp"
    with pytest.raises(LabStateError, match="not deployed"):
        find_lab("5node")


def test_find_lab_for_node() -> None:
    deployed("3node-ngdp")
    deployed("4node-ngdp")
    assert find_lab_for_node("spine").name == "3node-ngdp"
    assert find_lab_for_node("spine1").name == "4node-ngdp"
    assert find_lab_for_node("host1").name == "3node-ngdp"  # a virtual host
    deployed("4node-ngdp", name="copy")
    with pytest.raises(
        LabStateError, match="exists in labs 3node-ngdp, 4node-ngdp, copy: pass --lab NAME"
    ):
        find_lab_for_node("leaf1")
    assert find_lab_for_node("leaf1", lab="copy").name == "copy"
    with pytest.raises(LabStateError, match="has no node 'spine'"):
        find_lab_for_node("spine", lab="copy")
    with pytest.raises(LabStateError, match="no deployed lab has a node named 'ghost'"):
        find_lab_for_node("ghost")
