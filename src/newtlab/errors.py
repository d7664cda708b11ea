"""One exception hierarchy for everything newtlab reports to a user.

The CLI prints ``str(error)`` and exits non-zero for any ``NewtlabError``;
anything else is a bug and shows a traceback only under ``--debug``.
"""

from __future__ import annotations

from collections.abc import Iterable


def listing(head: str, items: Iterable[str]) -> str:
    """``head:`` then one item per line, indented, each item's own further lines
    indented more, so a reader (or a script) tells the items apart."""
    return head + ":" + "".join("\n  " + item.replace("\n", "\n    ") for item in items)


class NewtlabError(Exception):
    """Base of every error newtlab raises on purpose."""

    exit_code = 1


class UsageError(NewtlabError):
    """The command line asks for something the command does not do."""

    exit_code = 2


class SpecError(NewtlabError):
    """The spec files are missing, unreadable or inconsistent.

    Always names the file, the JSON path inside it and what to do.
    """

    exit_code = 2

    def __init__(self, file: str, path: str, problem: str, fix: str = "") -> None:
        self.file = file
        self.path = path
        self.problem = problem
        self.fix = fix
        where = f"{file}: {path}" if path else file
        text = f"{where}: {problem}"
        if fix:
            text += f" — {fix}"
        super().__init__(text)


class SpecErrors(SpecError):
    """Several independent spec problems, reported together."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.file, first.path, first.problem, first.fix)
        self.args = ("\n".join(str(e) for e in errors),)

    def __str__(self) -> str:
        return str(self.args[0])


class PlanError(NewtlabError):
    """The specs are valid but cannot be realised (capacity, ports, placement)."""

    exit_code = 2


class PortConflictError(NewtlabError):
    """One or more ports the lab needs are already in use."""

    def __init__(self, conflicts: list[str], other_problems: list[str] | None = None) -> None:
        self.conflicts = conflicts
        lines = "\n".join(f"  {c}" for c in conflicts)
        others = "".join(f"\n  {p}" for p in other_problems or [])
        super().__init__(
            f"port conflicts:\n{lines}\n"
            "Stop whatever holds these ports, or move the lab with the port bases "
            "in topology.json's newtlab section." + (f"\nAlso:{others}" if others else "")
        )


class LabStateError(NewtlabError):
    """A lab's state is missing, stale or locked."""


class RuntimeFailure(NewtlabError):
    """A process, VM or remote host did not do what it had to."""


class NotRunningError(RuntimeFailure):
    """What a command needs is not running (a node, its VM); the message says its state
    and the command that brings it back. Exit 125, as docker's own failures: a remote
    command's exit status passes through unchanged, so scripts can tell them apart."""

    exit_code = 125
