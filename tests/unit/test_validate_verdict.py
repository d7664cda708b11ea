"""Judging a declared test's run (exit status, regexes, JMESPath conditions, a ping's loss),
trying again on a fake clock, and the JUnit XML that a JUnit parser reads back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import junitparser
import pytest

from newtlab.errors import NotRunningError
from newtlab.export.junit import junit_xml
from newtlab.ops.events import Event
from newtlab.ops.validate import CheckResult, ValidationReport, run_check, until_holds
from newtlab.plan.model import CheckPlan, QueryPlan
from newtlab.plan.verdict import Verdict, judge

IP_ADDR = json.dumps([
    {"ifname": "eth1", "addr_info": [{"family": "inet", "local": "10.0.12.1"},
                                     {"family": "inet6", "local": "fe80::1"}]},
])  # fmt: skip
BUSYBOX = "PING 10.0.12.2 (10.0.12.2): 56 data bytes\n\n--- 10.0.12.2 ping statistics ---\n" \
    "3 packets transmitted, 2 packets received, 33% packet loss\n"  # fmt: skip
IPUTILS = "--- 10.0.12.2 ping statistics ---\n4 packets transmitted, 4 received, " \
    "0% packet loss, time 3004ms\nrtt min/avg/max = 1/2/3 ms\n"  # fmt: skip


def check(**fields: Any) -> CheckPlan:
    return CheckPlan(**{"test": "t", "node": "r1", "kind": "exec", "command": "x", **fields})


def query(q: str, test: str = "true", value: Any = None) -> CheckPlan:
    return check(query=QueryPlan(query=q, test=test, value=value))  # type: ignore[arg-type]


def test_exit_status() -> None:
    assert judge(check(), 0, "fine\n").passed
    failed = judge(check(), 3, "one\ntwo\n\n", "oops\n")
    assert failed == Verdict(False, "oops", "exit status 3 (wanted 0)")
    assert judge(check(exit=[1, 2]), 2, "").passed
    assert not judge(check(exit=[1, 2]), 0, "").passed
    assert judge(check(exit=None), 255, "").passed  # any status


def test_regexes_show_the_line_that_decided() -> None:
    output = "Codes: B - BGP\nB>* 10.0.0.0/24 via 10.1.1.1\nC>* 10.1.1.0/31 is connected\n"
    passed = judge(check(match=r"^B>\* 10\.0\.0\.0/24"), 0, output)
    assert passed == Verdict(True, "B>* 10.0.0.0/24 via 10.1.1.1")
    missing = judge(check(match="192.168"), 0, output)
    assert not missing.passed and missing.reason == "the output has no match of /192.168/"
    assert missing.evidence == "C>* 10.1.1.0/31 is connected"  # the last line printed
    forbidden = judge(check(no_match="connected$"), 0, output)
    assert forbidden == Verdict(False, "C>* 10.1.1.0/31 is connected",
                                "the output matches /connected$/")  # fmt: skip
    assert judge(check(match="oops"), 0, "", "oops: on stderr").passed  # both streams
    assert judge(check(), 0, "").evidence == "(no output)"


@pytest.mark.parametrize(
    ("q", "test", "value", "passed"),
    [
        ("[0].addr_info[?family=='inet'].local | [0]", "equals", "10.0.12.1", True),
        ("[0].addr_info[?family=='inet'].local | [0]", "equals", "10.0.12.9", False),
        ("[0].addr_info[].local", "contains", "fe80::1", True),
        ("[0].addr_info[].local", "contains", "10.9.9.9", False),
        ("[0].ifname", "contains", "eth", True),  # a substring of a string
        ("[0].ifname", "contains", 1, False),
        ("[0].addr_info", "count", 2, True),
        ("[0].addr_info", "count", 3, False),
        ("[0].mtu", "count", 0, False),  # null has no items
        ("length([0].addr_info) >= `2`", "true", None, True),
        ("[0].addr_info[?family=='inet4']", "true", None, False),  # empty is false
        ("[0].missing", "true", None, False),
        ("[0].missing", "equals", None, True),  # equals null
    ],
)
def test_queries(q: str, test: str, value: Any, passed: bool) -> None:
    verdict = judge(query(q, test, value), 0, IP_ADDR)
    assert verdict.passed is passed
    assert verdict.evidence.startswith(f"{q} → ")
    assert bool(verdict.reason) is not passed


def test_a_query_over_what_is_not_json_or_of_the_wrong_type() -> None:
    not_json = judge(query("a"), 0, "% Invalid input\n")
    assert not not_json.passed and not_json.reason.startswith("the output is not JSON")
    assert not_json.evidence == "% Invalid input"
    wrong = judge(query("length(`1`)"), 0, "{}")
    assert not wrong.passed and wrong.reason.startswith("query 'length(`1`)' failed")


def test_ping_loss_from_busybox_and_iputils() -> None:
    ping = check(kind="ping", ping_to="10.0.12.2")
    lossy = judge(ping, 1, BUSYBOX)
    assert lossy == Verdict(
        False, "3 packets transmitted, 2 packets received, 33% packet loss",
        "33% of pings to 10.0.12.2 were lost (at most 0% allowed)",
    )  # fmt: skip
    assert judge(ping.model_copy(update={"loss": 50}), 1, BUSYBOX).passed
    clean = judge(ping, 0, IPUTILS)
    assert clean.passed and clean.evidence.startswith("4 packets transmitted, 4 received")
    no_summary = judge(ping, 1, "", "ping: sendto: Network unreachable\n")
    assert no_summary == Verdict(False, "ping: sendto: Network unreachable",
                                 "ping 10.0.12.2 printed no summary")  # fmt: skip


class FakeClock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def tries(verdicts: list[bool], wait: float, interval: float = 2) -> Iterator[Any]:
    clock = FakeClock()
    answers = iter(verdicts)

    async def attempt() -> Verdict:
        clock.now += 0.5  # each run takes half a second
        return Verdict(next(answers))

    retried: list[Verdict] = []
    verdict, count = asyncio.run(
        until_holds(check(wait=wait, interval=interval), attempt, clock, clock.sleep,
                    retried.append)
    )  # fmt: skip
    assert len(retried) == count - 1  # told of each try that is followed by another
    yield from (verdict.passed, count, clock.slept, clock.now - 100)


def test_without_wait_one_try() -> None:
    assert list(tries([False, True], wait=0)) == [False, 1, [], 0.5]


def test_waits_until_it_holds() -> None:
    assert list(tries([False, False, True, False], wait=30)) == [True, 3, [2, 2], 5.5]


def test_gives_up_when_no_time_is_left_for_another_try() -> None:
    # runs start at 0, 2.5 and 5 (each 0.5 s): after the third, 5.5 + 2 passes the deadline, 7
    passed, count, slept, elapsed = tries([False] * 10, wait=7)
    assert (passed, count, slept, elapsed) == (False, 3, [2, 2], 5.5)
    assert list(tries([False] * 10, wait=60, interval=10))[1] == 6


def result(test: str, node: str, passed: bool, **more: Any) -> CheckResult:
    return CheckResult(test=test, node=node, kind="ping", passed=passed, seconds=1.25,
                       attempts=1, evidence="3 packets transmitted", command="ping -c 3 x",
                       **more)  # fmt: skip


def test_junit_read_back_by_a_junit_parser(tmp_path: Path) -> None:
    report = ValidationReport("line3", [
        result("links", "r1", True),
        result("links", "r2", False, reason="100% of pings were lost", fail="r2 is cut off"),
        result("forwarding", "r2", True),
    ])  # fmt: skip
    path = tmp_path / "junit.xml"
    path.write_text(junit_xml(report))
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = {suite.name: suite for suite in xml}
    assert list(suites) == ["links", "forwarding"]
    assert (suites["links"].tests, suites["links"].failures) == (2, 1)
    cases = {(case.classname, case.name): case for suite in xml for case in suite}
    assert list(cases) == [("line3.links", "r1"), ("line3.links", "r2"),
                           ("line3.forwarding", "r2")]  # fmt: skip
    assert cases[("line3.links", "r1")].is_passed
    failed = cases[("line3.links", "r2")]
    assert not failed.is_passed and failed.time == 1.25
    [failure] = failed.result
    assert isinstance(failure, junitparser.Failure)
    assert failure.message == "r2 is cut off"
    assert "100% of pings were lost" in (failure.text or "")
    assert "$ ping -c 3 x" in (failed.system_out or "")


class DownNode:
    """Logins to a node whose VM is stopped: the runner's only way to learn it."""

    async def connection(self, name: str) -> None:
        raise NotRunningError(f"{name} is stopped — `newtlab start {name}` starts it")


def test_a_test_that_could_not_run_says_why_not_what_a_failure_would_mean() -> None:
    events: list[Event] = []
    ping = check(kind="ping", ping_to="10.0.12.2", fail="r1 is cut off")
    done = asyncio.run(run_check(ping, DownNode(), events.append))  # type: ignore[arg-type]
    assert not done.passed and done.attempts == 1
    assert done.fail == "" and done.evidence == "(not run)"
    assert done.message == "r1 is stopped — `newtlab start r1` starts it (`x` on r1: (not run))"
    assert [(e.node, e.phase) for e in events] == [("t[r1]", "running"), ("t[r1]", "failed")]
