"""newtlab's pytest plugin: a deployed lab as a fixture.

Name the spec directory with a marker (on a module: ``pytestmark =
pytest.mark.newtlab("specs/line3")``) or the ini option ``newtlab_specs``; a
relative path is taken from pytest's rootdir. Tests that ask for
``newtlab_lab`` get the deployed ``newtlab.lab.Lab``. A lab is deployed once
per session (``scope="module"`` on the marker, or ``newtlab_scope = module``,
deploys it for each module instead) and destroyed afterwards, also when the
tests fail or are interrupted. A deploy that fails makes every test using it
fail with the deploy's own message; the lab is not deployed again.

``snapshot="NAME"`` on the marker (or the ini option ``newtlab_snapshot``): the
lab is deployed once and each module after the first gets it back as it was
by restoring snapshot NAME in place (seconds) instead of a redeploy. A
snapshot of that name the lab already has (a provisioned fabric, say) is what
the first deploy resumes and every module starts from; otherwise the plugin
takes it right after the deploy and deletes it at the end.

A module that imports ``test_declared`` runs the lab's declared tests
(``newtlab.validate``) as its items, one per test and node.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .lab import Lab
    from .plan.model import CheckPlan

SCOPES = ("session", "module")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("newtlab_specs", "spec directory the newtlab_lab fixture deploys", default="")
    parser.addini("newtlab_scope", "deploy once per session or per module", default="session")
    parser.addini("newtlab_accel", "auto (probe KVM, else TCG), kvm or tcg", default="auto")
    parser.addini("newtlab_snapshot", "restore this snapshot before each module", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        'newtlab(specs, scope="session", snapshot=""): the spec directory newtlab_lab deploys '
        "for these tests; with snapshot, each module starts from that snapshot of it",
    )


@dataclass
class _Deployed:
    lab: Lab | None = None
    error: str = ""
    taken: str = ""  # the snapshot the plugin took (deleted with the lab)
    modules: int = 0  # modules that used it so far


@dataclass
class _Labs:
    """Labs this session deployed, by (spec dir, scope key); destroyed at the end."""

    accel: str
    deployed: dict[tuple[Path, str], _Deployed] = field(default_factory=dict)

    def get(self, specs: Path, key: str, snapshot: str = "") -> Lab:
        """The lab deployed for ``key``; with ``snapshot``, as that snapshot left it."""
        if (specs, key) not in self.deployed:
            self.deployed[(specs, key)] = self._deploy(specs, snapshot)
        found = self.deployed[(specs, key)]
        if found.lab is None:
            pytest.fail(found.error, pytrace=False)
        found.modules += 1
        if snapshot and found.modules > 1:
            from .errors import NewtlabError

            try:
                found.lab.restore(snapshot)
            except NewtlabError as exc:
                pytest.fail(f"newtlab: restoring snapshot {snapshot} failed: {exc}", False)
        return found.lab

    def _deploy(self, specs: Path, snapshot: str = "") -> _Deployed:
        from .errors import NewtlabError
        from .home import list_labs
        from .lab import Lab

        try:
            lab = Lab.load(specs)
        except NewtlabError as exc:
            return _Deployed(error=f"newtlab: cannot plan {specs}: {exc}")
        if lab.name in list_labs():  # someone's lab: neither replaced nor destroyed
            return _Deployed(
                error=f"newtlab: lab {lab.name} is already deployed; destroy it first "
                f"(`newtlab destroy {lab.name}`) to let the tests deploy their own"
            )
        kept = snapshot and snapshot in {s.name for s in lab.snapshots()}
        try:  # never replaces a lab someone deployed
            lab.deploy(accel=self.accel, from_snapshot=snapshot if kept else None)
            if snapshot and not kept:
                lab.snapshot(snapshot)
        except NewtlabError as exc:
            self.destroy(lab.name)  # whatever the failed deploy left
            return _Deployed(error=f"newtlab: deploy of {specs} failed: {exc}")
        return _Deployed(lab, taken=snapshot if not kept else "")

    def release(self, specs: Path, key: str) -> None:
        found = self.deployed.pop((specs, key), None)
        if found is not None and found.lab is not None:
            self.destroy(found.lab.name)
            if found.taken:
                found.lab.delete_snapshot(found.taken)

    @staticmethod
    def destroy(name: str) -> None:
        from .errors import LabStateError
        from .lab import destroy_lab

        with contextlib.suppress(LabStateError):  # nothing of it is left: nothing to do
            destroy_lab(name, grace=2.0)

    def release_all(self) -> None:
        for specs, key in list(self.deployed):
            self.release(specs, key)


@pytest.fixture(scope="session")
def newtlab_labs(pytestconfig: pytest.Config) -> Iterator[_Labs]:
    """Every lab the session deployed; each destroyed when the session ends."""
    labs = _Labs(str(pytestconfig.getini("newtlab_accel")))
    try:
        yield labs
    finally:
        labs.release_all()


def _wanted(node: pytest.Item | pytest.Collector, config: pytest.Config) -> tuple[Path, str, str]:
    """The spec directory, scope and snapshot ``node`` asks for (marker, else ini)."""
    marker = node.get_closest_marker("newtlab")
    args: tuple[Any, ...] = marker.args if marker else ()
    kwargs: Mapping[str, Any] = marker.kwargs if marker else {}
    specs = str(args[0] if args else kwargs.get("specs") or config.getini("newtlab_specs"))
    scope = str(kwargs.get("scope") or config.getini("newtlab_scope"))
    snapshot = str(kwargs.get("snapshot") or config.getini("newtlab_snapshot"))
    if not specs:
        pytest.fail(
            'newtlab_lab: name a spec directory with @pytest.mark.newtlab("DIR") or the '
            "ini option newtlab_specs",
            pytrace=False,
        )
    if scope not in SCOPES:
        pytest.fail(f"newtlab_lab: scope must be session or module (got {scope!r})", False)
    path = Path(specs).expanduser()
    return (path if path.is_absolute() else config.rootpath / path).resolve(), scope, snapshot


@pytest.fixture(scope="module")
def newtlab_lab(request: pytest.FixtureRequest, newtlab_labs: _Labs) -> Iterator[Lab]:
    """The deployed lab of this module's spec directory (see the module's docstring)."""
    specs, scope, snapshot = _wanted(request.node, request.config)
    key = request.node.nodeid if scope == "module" else ""
    try:
        yield newtlab_labs.get(specs, key, snapshot)
    finally:
        if scope == "module":
            newtlab_labs.release(specs, key)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``newtlab_check`` runs once for each declared test (newtlab.validate in
    the spec dir's topology.json) on each of its nodes: ``test_declared[links@r1]``."""
    if "newtlab_check" not in metafunc.fixturenames:
        return
    from .errors import NewtlabError
    from .lab import Lab

    specs, _, _ = _wanted(metafunc.definition, metafunc.config)
    try:
        checks = Lab.load(specs).plan.checks
    except NewtlabError as exc:
        pytest.fail(f"newtlab: cannot plan {specs}: {exc}", pytrace=False)
    metafunc.parametrize("newtlab_check", checks, ids=[f"{c.test}@{c.node}" for c in checks])


def test_declared(newtlab_lab: Lab, newtlab_check: CheckPlan) -> None:
    """One declared test on one node of the deployed lab: import this into a module marked
    with the spec dir (``from newtlab.pytest_plugin import test_declared``)."""
    result = newtlab_lab.check(newtlab_check)
    if not result.passed:
        pytest.fail(result.message, pytrace=False)
