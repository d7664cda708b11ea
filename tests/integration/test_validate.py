"""`newtlab validate` on real guests: examples/hosts2 deployed with `deploy --validate`, its
declared tests passing (pings from virtual hosts, a JSON query over `ip -j route`, a line for
the router's login shell), JUnit XML read back by a JUnit parser, then a pulled cable failing
a ping test with its own message and exit status 1, and the tests passing again once the
cable is back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import junitparser
import pytest
from labkit import REPO, SpecDir, run_cli

pytestmark = pytest.mark.integration

HOSTS2 = REPO / "examples" / "hosts2"
# An ssh test's line is read by the login's shell as it is (the expansions prove it).
LOGIN = {"name": "login", "nodes": ["r1"], "ssh": "echo $((6 * 7)) $(hostname)",
         "expect": {"match": "^42 {{ node.name }}$"}}  # fmt: skip
CHECKS = [("gateway", "host1"), ("gateway", "host2"), ("host-to-host", "host1"),
          ("default-route", "host1"), ("default-route", "host2"), ("login", "r1")]  # fmt: skip


def _with_login_test(topology: dict[str, Any]) -> None:
    topology["newtlab"]["validate"].append(LOGIN)


def test_declared_tests_pass_fail_on_a_pulled_cable_and_pass_again(
    make_lab, newtlab_home: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab(HOSTS2, configs=True, declared=True, edit=_with_login_test)
    deployed = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", "--validate",
                       "--json", timeout=600)  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    report = json.loads(deployed.stdout)["validation"]
    assert report["passed"] and report["failed"] == 0, report
    assert [(r["test"], r["node"]) for r in report["results"]] == CHECKS
    route = next(r for r in report["results"] if r["test"] == "default-route")
    assert route["evidence"] == '[0].gateway → "10.0.1.1"'  # host1's gateway, from r1:eth1
    assert report["results"][-1]["evidence"] == "42 r1"

    junit = tmp_path / "junit.xml"
    passed = run_cli("validate", spec.lab, "--junit", str(junit))
    assert passed.returncode == 0, passed.stderr + passed.stdout
    assert f"Lab {spec.lab}: 6 checks, all passed" in passed.stdout
    cases = [(case.classname, case.name, case.is_passed)
             for suite in junitparser.JUnitXml.fromfile(str(junit)) for case in suite]  # fmt: skip
    assert cases == [(f"{spec.lab}.{test}", node, True) for test, node in CHECKS]

    assert run_cli("link", "down", "r1:eth2").returncode == 0  # host2's only link
    failed = run_cli("validate", "--test", "host-to-host", "--junit", str(junit), "--json")
    assert failed.returncode == 1, failed.stderr + failed.stdout
    [result] = json.loads(failed.stdout)["results"]
    assert result["message"].startswith(
        "host1 cannot reach host2 through r1 — 100% of pings to 10.0.2.1 were lost"
    ), result
    assert "host-to-host: ✗ host1 — 1 failed" in failed.stderr  # its live line
    [case] = [case for suite in junitparser.JUnitXml.fromfile(str(junit)) for case in suite]
    [failure] = case.result
    assert failure.message == "host1 cannot reach host2 through r1"

    assert run_cli("link", "up", "r1:eth2").returncode == 0
    again = run_cli("validate", spec.lab, "--json")  # gateway waits for the link to carry
    assert again.returncode == 0, again.stderr + again.stdout
    assert json.loads(again.stdout)["passed"] is True
