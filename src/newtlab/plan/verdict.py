"""Whether one run of a declared test shows what the test wants: pure, no I/O.

A run is the command's exit status and output; the verdict says pass or
fail, why it failed, and the evidence a reader checks it by: the output line
that matched, the query's result, a ping's summary — or, when nothing
matched, the last line the command printed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.exceptions

from .model import CheckPlan, QueryPlan

EVIDENCE_WIDTH = 200
_LOSS = re.compile(r"(\d+(?:\.\d+)?)% packet loss")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    evidence: str = ""  # one line, shortened
    reason: str = ""  # why it failed ('' when it passed)
    ran: bool = True  # False: the command could not run (the node is down, no login)


def query_problem(query: str) -> str | None:
    """Why ``query`` is no JMESPath expression, or None if it is (or is empty)."""
    if not query:
        return None
    try:
        jmespath.compile(query)
    except jmespath.exceptions.JMESPathError as exc:
        return f"{query!r} is not a JMESPath expression: {str(exc).splitlines()[0]}"
    return None


def _line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EVIDENCE_WIDTH else text[: EVIDENCE_WIDTH - 1] + "…"


def last_line(output: str) -> str:
    """The last line with something on it, shortened: what a failure shows."""
    lines = [line for line in output.splitlines() if line.strip()]
    return _line(lines[-1]) if lines else "(no output)"


def _line_at(output: str, found: re.Match[str]) -> str:
    """The whole line holding a match."""
    start = output.rfind("\n", 0, found.start()) + 1
    end = output.find("\n", found.end())
    return _line(output[start : end if end >= 0 else len(output)])


def judge(check: CheckPlan, exit_status: int, stdout: str, stderr: str = "") -> Verdict:
    """The verdict on one run of ``check`` that exited ``exit_status``."""
    output = stdout + ("\n" + stderr if stderr else "")
    if check.kind == "ping":
        return _ping(check, output)
    if check.exit is not None and exit_status not in check.exit:
        wanted = " or ".join(str(code) for code in check.exit)
        return Verdict(False, last_line(output), f"exit status {exit_status} (wanted {wanted})")
    evidence = last_line(output)
    if check.match:
        found = re.search(check.match, output, re.M)
        if found is None:
            return Verdict(False, evidence, f"the output has no match of /{check.match}/")
        evidence = _line_at(output, found)
    if check.no_match:
        found = re.search(check.no_match, output, re.M)
        if found is not None:
            return Verdict(False, _line_at(output, found), f"the output matches /{check.no_match}/")
    if check.query is not None:
        return _query(check.query, stdout)
    return Verdict(True, evidence)


def _ping(check: CheckPlan, output: str) -> Verdict:
    found = _LOSS.search(output)
    if found is None:
        return Verdict(False, last_line(output), f"ping {check.ping_to} printed no summary")
    summary = _line_at(output, found)
    lost = float(found.group(1))
    if lost > check.loss:
        return Verdict(
            False, summary, f"{found.group(1)}% of pings to {check.ping_to} were lost "
            f"(at most {check.loss:g}% allowed)",
        )  # fmt: skip
    return Verdict(True, summary)


def _true(value: Any) -> bool:
    """JMESPath's truth: false, null and empty strings, lists and objects are false."""
    return value is not None and value is not False and value not in ("", [], {})


def _query(query: QueryPlan, stdout: str) -> Verdict:
    try:
        data = json.loads(stdout)
    except ValueError as exc:
        return Verdict(False, last_line(stdout), f"the output is not JSON ({exc})")
    try:
        result = jmespath.search(query.query, data)
    except jmespath.exceptions.JMESPathError as exc:  # a function given the wrong type
        return Verdict(False, last_line(stdout), f"query {query.query!r} failed: {exc}")
    shown = _line(f"{query.query} → {json.dumps(result)}")
    wanted = json.dumps(query.value)
    if query.test == "equals":
        ok, why = result == query.value, f"the query's result is not {wanted}"
    elif query.test == "contains":
        ok = isinstance(result, list | str) and _contains(result, query.value)
        why = f"the query's result does not contain {wanted}"
    elif query.test == "count":
        ok = isinstance(result, list | dict | str) and len(result) == query.value
        why = f"the query's result does not have {wanted} items"
    else:
        ok, why = _true(result), "the query's result is not true (null, false or empty)"
    return Verdict(ok, shown, "" if ok else why)


def _contains(result: list[Any] | str, value: Any) -> bool:
    if isinstance(result, str):
        return isinstance(value, str) and value in result
    return value in result


def wanted(check: CheckPlan) -> str:
    """What ``check`` must show, in words (``newtlab plan`` lists it)."""
    if check.kind == "ping":
        held = f"at most {check.loss:g}% lost"
    else:
        held = "any exit status" if check.exit is None else (
            "exit " + " or ".join(str(code) for code in check.exit)
        )  # fmt: skip
        held += f", output matches /{check.match}/" if check.match else ""
        held += f", output has no /{check.no_match}/" if check.no_match else ""
        if check.query is not None:
            value = json.dumps(check.query.value)
            test = {"equals": f"== {value}", "contains": f"contains {value}",
                    "count": f"has {value} items", "true": "is true"}[check.query.test]  # fmt: skip
            held += f", JSON {check.query.query} {test}"
    if check.wait:
        held += f"; tried for up to {check.wait:g} s, every {check.interval:g} s"
    return held
