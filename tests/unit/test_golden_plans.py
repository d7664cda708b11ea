"""Golden plans: every example spec dir plans exactly as recorded in tests/golden/plans/.

A change to planning shows up here as a diff of whole plans. When the change
is intended: `./test.sh tests/unit/test_golden_plans.py --update-golden`,
then read the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newtlab.lab import Lab
from specfactory import FIXTURES

ROOT = Path(__file__).parents[2]
GOLDEN = ROOT / "tests" / "golden" / "plans"
SPECS = {
    **{p.name: p for p in sorted((ROOT / "examples").iterdir()) if p.is_dir()},
    **{p.name: p / "specs" for p in sorted(FIXTURES.iterdir()) if p.is_dir()},
}


def _normalized(spec: Path, home: Path) -> str:
    """The plan's JSON with this run's paths as placeholders."""
    text = Lab.load(spec, accel="tcg").plan.to_json()
    for path, name in ((spec.resolve(), "<spec>"), (home, "<newtlab-home>"),
                       (Path.home(), "<home>")):  # fmt: skip
        text = text.replace(str(path), name)
    return text


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_plan_is_the_recorded_one(
    name: str, request: pytest.FixtureRequest, _isolated_home: Path
) -> None:
    text = _normalized(SPECS[name], _isolated_home)
    golden = GOLDEN / f"{name}.json"
    if request.config.getoption("--update-golden"):
        golden.write_text(text)
    assert golden.exists(), f"no {golden}: run with --update-golden"
    assert text == golden.read_text(), (
        f"the plan of {name} changed; if intended, rerun with --update-golden and check the diff"
    )
