"""Options that work in any position: ``--debug`` anywhere, ``--json`` before the command.

Click reads an option only at its command's level. Before it parses, the words
are read here: ``--debug`` is taken out wherever it stands (it is the root's
option), and a ``--json`` written before the command moves behind it, if that
command prints data. Words after ``--``, and for ``ssh``/``exec`` everything
after the node's name, belong to the remote command and are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..errors import UsageError

DEBUG = "--debug"
JSON = "--json"
PASS_THROUGH = ("ssh", "exec")


class Command(Protocol):
    """A command as click builds it (typer carries its own copy of click)."""

    @property
    def name(self) -> str | None: ...
    @property
    def params(self) -> Sequence[Any]: ...


def _commands(command: Command) -> Mapping[str, Command] | None:
    """A group's commands by name; None for a command that is not a group."""
    found: Mapping[str, Command] | None = getattr(command, "commands", None)
    return found


def _command_at(root: Command, words: list[str]) -> tuple[Command | None, int]:
    """The (sub)command the words name and the index just after its name; a group's
    options before it are skipped (none of them takes a value)."""
    command, index = root, 0
    while (commands := _commands(command)) is not None:
        while index < len(words) and words[index].startswith("-") and words[index] != "--":
            index += 1
        if index >= len(words) or words[index] not in commands:
            return (None if command is root else command), index
        command = commands[words[index]]
        index += 1
    return command, index


def _takes(command: Command, option: str) -> bool:
    return any(option in param.opts for param in command.params)


def lift(root: Command, words: list[str]) -> tuple[list[str], bool]:
    """``words`` with ``--debug`` taken out and a ``--json`` written before the command
    moved behind it; and whether ``--debug`` was given."""
    command, after = _command_at(root, words)
    end = words.index("--") if "--" in words else len(words)
    if command is not None and command.name in PASS_THROUGH:  # the node ends ours
        end = next((i for i in range(after, end) if not words[i].startswith("-")), end)
    debug = DEBUG in words[:end]
    kept = [w for i, w in enumerate(words) if not (i < end and w == DEBUG)]
    after -= words[:after].count(DEBUG)
    if command is not None and JSON in kept[:after]:
        if not _takes(command, JSON):
            raise UsageError(f"`newtlab {command.name}` prints no data: it has no {JSON}")
        kept.remove(JSON)
        kept.insert(after - 1, JSON)
    return kept, debug
