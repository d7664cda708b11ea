"""``newtlab validate``: run the tests declared in topology.json on a deployed lab."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import NewtlabError, UsageError
from .common import JsonOpt, LabArg, NameOpt, SpecsOpt, err, lab_name, out, print_json

if TYPE_CHECKING:
    from rich.console import Console

    from ..lab import Lab
    from ..ops.validate import ValidationReport
    from ..plan.model import CheckPlan

FAILED = 1  # a test failed
UNUSABLE = 2  # a usage or lab error: nothing was judged

TestsOpt = Annotated[
    list[str] | None, typer.Option("--test", help="only this test (again for more)")
]
NodesOpt = Annotated[
    list[str] | None, typer.Option("--node", help="only on this node (again for more)")
]
JunitOpt = Annotated[
    Path | None, typer.Option("--junit", help="also write the results as JUnit XML here")
]


def validate(
    lab: LabArg = None,
    specs: SpecsOpt = None,
    name: NameOpt = None,
    test: TestsOpt = None,
    node: NodesOpt = None,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
) -> None:
    """Run the lab's declared tests (newtlab.validate in topology.json): each in the order
    written, on its nodes at once. Exit 0: all passed; 1: one failed; 2: usage or lab error.

    With -S DIR the tests are read from DIR as they are now; else as the lab was deployed.
    """
    try:
        target = _lab(lab, specs, name)
        checks = target.checks(test or [], node or [])
        report = run(target, checks, err if json_out else out, table=not json_out)
        if junit is not None:
            write_junit(report, junit)
    except NewtlabError as exc:
        exc.exit_code = UNUSABLE  # nothing was judged: not a failed test
        raise
    if json_out:
        print_json(report.to_json())
    if not report.passed:
        raise typer.Exit(FAILED)


def _lab(lab: str | None, specs: Path | None, name: str | None) -> Lab:
    from ..lab import Lab

    if specs is not None:  # the tests as the spec dir has them now, on its deployed lab
        return Lab.load(specs, name=lab or name)
    return Lab.attach(lab_name(lab, None, name))


def run(
    lab: Lab, checks: list[CheckPlan], console: Console, table: bool = True
) -> ValidationReport:
    """Run ``checks`` on ``lab`` with a live line per test on ``console``, then (``table``)
    the results' table there; the report. No checks is a usage error: nothing would be validated."""
    from ..render import ValidateView, validation_table

    if not checks and lab.plan.checks:
        raise UsageError("none of the tests chosen runs on the nodes chosen (`newtlab plan` "
                         "lists each node's tests)")  # fmt: skip
    if not checks:
        raise UsageError(f"lab {lab.name} declares no tests: add a \"validate\" list to the "
                         f"newtlab section of {lab.plan.spec_dir}/topology.json")  # fmt: skip
    with ValidateView(console, checks) as view:
        report = lab.run_checks(checks, progress=view)
    if table:
        console.print(validation_table(report))
    return report


def write_junit(report: ValidationReport, path: Path) -> None:
    from ..export.junit import junit_xml

    try:
        path.write_text(junit_xml(report))
    except OSError as exc:
        raise NewtlabError(f"cannot write {path}: {exc.strerror}") from None
