"""``newtlab validate --junit FILE``: the results as JUnit XML, which CI systems show.

One ``testsuite`` per declared test, one ``testcase`` per node it ran on (its
``classname`` the lab and test, its ``name`` the node); a failure carries the
test's message and the evidence, and every case the command it ran.
"""

from __future__ import annotations

from xml.etree import ElementTree

from ..ops.validate import CheckResult, ValidationReport


def junit_xml(report: ValidationReport) -> str:
    root = ElementTree.Element("testsuites", name=f"newtlab validate {report.lab}")
    tests = dict.fromkeys(r.test for r in report.results)
    for test in tests:
        results = [r for r in report.results if r.test == test]
        suite = ElementTree.SubElement(
            root,
            "testsuite",
            name=test,
            tests=str(len(results)),
            failures=str(sum(not r.passed for r in results)),
            errors="0",
            time=f"{sum(r.seconds for r in results):.3f}",
        )
        for result in results:
            _case(suite, report.lab, result)
    _totals(root, report.results)
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(
        root, encoding="unicode"
    ) + "\n"  # fmt: skip


def _case(suite: ElementTree.Element, lab: str, result: CheckResult) -> None:
    case = ElementTree.SubElement(
        suite,
        "testcase",
        classname=f"{lab}.{result.test}",
        name=result.node,
        time=f"{result.seconds:.3f}",
    )
    if not result.passed:
        failure = ElementTree.SubElement(case, "failure", message=result.fail or result.reason)
        failure.text = f"{result.message}\ntries: {result.attempts}"
    out = ElementTree.SubElement(case, "system-out")
    out.text = f"$ {result.command}\n{result.evidence}"


def _totals(root: ElementTree.Element, results: list[CheckResult]) -> None:
    root.set("tests", str(len(results)))
    root.set("failures", str(sum(not r.passed for r in results)))
    root.set("errors", "0")
    root.set("time", f"{sum(r.seconds for r in results):.3f}")
