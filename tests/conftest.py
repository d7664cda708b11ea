from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "specs"
EXAMPLES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own NEWTLAB_HOME so no test sees another's labs."""
    home = tmp_path_factory.mktemp("newtlab-home")
    monkeypatch.setenv("NEWTLAB_HOME", str(home))
    return home
