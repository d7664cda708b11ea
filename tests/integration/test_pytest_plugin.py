"""The pytest plugin, in a pytest run of its own: `newtlab_lab` deploys the marked spec dir
once for the tests that share it, each module after the first starting from a snapshot
of it (restored in place), and destroys it and its snapshot afterwards; a deploy that
fails fails those tests with its own message and leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest
from labkit import SpecDir

import labprocs
from newtlab.home import list_labs, newtlab_home

pytestmark = pytest.mark.integration

TESTS = """
import pytest

pytestmark = pytest.mark.newtlab({spec!r}{scope})
seen = []


def test_every_node_runs(newtlab_lab):
    status = newtlab_lab.status()
    assert [n.status for n in status.nodes] == ["running"] * 3
    seen.append(status.nodes[0].pid)


def test_the_same_lab_serves_the_next_test(newtlab_lab):
    argv = newtlab_lab.ssh_command("r2", ["hostname"])
    import subprocess
    assert subprocess.run(argv, capture_output=True, text=True).stdout.strip() == "r2"
    assert newtlab_lab.status().nodes[0].pid == seen[0]  # not deployed again
"""


WRITES = """
import pytest

pytestmark = pytest.mark.newtlab({spec!r})


def test_a_module_changes_the_lab(newtlab_lab):
    assert newtlab_lab.run("r1", ["touch", "/root/left-by-a-module"]).returncode == 0
"""


SEES = """
import pytest

pytestmark = pytest.mark.newtlab({spec!r})


def test_the_next_module_starts_from_the_snapshot(newtlab_lab):
    assert newtlab_lab.run("r1", ["test", "-e", "/root/left-by-a-module"]).returncode == 1
    assert [s.name for s in newtlab_lab.snapshots()] == ["fresh"]
"""


DECLARED = """
import pytest

from newtlab.pytest_plugin import test_declared

pytestmark = pytest.mark.newtlab({spec!r})
"""


def inner_pytest(directory: Path, *options: str) -> tuple[dict[str, str], str]:
    """Run pytest on ``directory``: each test's outcome (passed, failed, error) and the output."""
    junit = directory / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
         str(directory), "-o", "newtlab_accel=tcg", *options, f"--junitxml={junit}",
         str(directory)],
        capture_output=True, text=True, env=os.environ.copy(), timeout=900, cwd=directory,
    )  # fmt: skip
    outcomes = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcome = kinds[0] if kinds else "passed"
        name = f"{case.get('classname', '')}.{case.get('name', '')}"
        outcomes[name] = "failed" if outcome == "failure" else outcome
    return outcomes, result.stdout + result.stderr


def docs_example() -> str:
    """The pytest example of docs/tools.md, as it is written there."""
    page = (Path(__file__).parents[2] / "docs" / "tools.md").read_text()
    return page.split("## pytest", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def test_the_fixture_deploys_once_and_destroys(
    make_lab: Callable[..., SpecDir], tmp_path: Path
) -> None:
    """The docs' example, modules of their own and the lab's declared tests as items (one per
    test and node) share one deploy (session scope); each module after the first starts
    from snapshot ``fresh``, taken after the deploy, so what a module left is gone."""
    spec = make_lab(configs=True, declared=True)  # the example pings r3 from r1: routed at boot
    suite = tmp_path / "suite"
    shutil.copytree(spec.path, suite / "specs" / "line3")
    (suite / "test_docs_example.py").write_text(docs_example())
    (suite / "test_lab.py").write_text(TESTS.format(spec="specs/line3", scope=""))
    (suite / "test_marker_a.py").write_text(WRITES.format(spec="specs/line3"))
    (suite / "test_marker_b.py").write_text(SEES.format(spec="specs/line3"))
    (suite / "test_tests.py").write_text(DECLARED.format(spec="specs/line3"))
    outcomes, output = inner_pytest(suite, "-o", "newtlab_snapshot=fresh")
    declared = [name.split(".", 1)[1] for name in outcomes if name.startswith("test_tests.")]
    assert declared == [
        "test_declared[links@r1]", "test_declared[links@r2]", "test_declared[links@r3]",
        "test_declared[across@r1]", "test_declared[across@r3]", "test_declared[forwarding@r2]",
        "test_declared[addresses@r1]", "test_declared[addresses@r2]",
        "test_declared[addresses@r3]",
    ], output  # fmt: skip
    assert list(outcomes.values()) == ["passed"] * 15, output
    assert list_labs() == [] and labprocs.home_labs() == {}, output
    assert not (newtlab_home() / "snapshots").exists() or not any(
        (newtlab_home() / "snapshots").rglob("*")), output  # fmt: skip


def test_a_failed_deploy_fails_its_tests_with_its_message(
    make_lab: Callable[..., SpecDir], tmp_path: Path
) -> None:
    spec = make_lab()
    platforms = spec.path / "platforms.json"
    data = json.loads(platforms.read_text())
    for platform in data["platforms"].values():
        platform["vm_image"] = "/nonexistent/missing.qcow2"
    platforms.write_text(json.dumps(data))
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_lab.py").write_text(TESTS.format(spec=str(spec.path), scope=', scope="module"'))
    outcomes, output = inner_pytest(suite)
    assert list(outcomes.values()) == ["error", "error"], output
    assert output.count("vm_image not found: /nonexistent/missing.qcow2") >= 2, output
    assert list_labs() == [] and labprocs.home_labs() == {}, output
