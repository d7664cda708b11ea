from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own NEWTLAB_HOME so no test sees another's labs."""
    home = tmp_path_factory.mktemp("newtlab-home")
    monkeypatch.setenv("NEWTLAB_HOME", str(home))
    return home


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from what the code produces now (check the diff first)",
    )
