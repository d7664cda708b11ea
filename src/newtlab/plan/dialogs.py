"""Console dialogs: a platform's ``vm_console`` over its device type's defaults, checked.

The plan holds every dialog as explicit expect/send steps, so what newtlab
will type on a console is visible in ``newtlab plan --json`` and a bad
regex or template is a spec error before any VM starts.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import SpecError
from ..spec.models import ConsoleDialog, regex_problem
from ..templates import TemplateError, render
from .model import ConsolePlan, DialogStepPlan

DIALOG_VARIABLES = (
    "ssh_user",
    "ssh_pass",
    "ssh_pubkey",
    "hostname",
    "console_user",
    "console_pass",
)
PROMPTS = {"login_prompt", "password_prompt", "shell_prompt"}
COMMAND_LISTS = ("set_password", "bootstrap", "create_user", "install_key")
_OLD_PLACEHOLDER = re.compile(r"(?<!\{)\{(" + "|".join(DIALOG_VARIABLES) + r")\}(?!\})")


def usual_login(login_prompt: str, password_prompt: str, shell_prompt: str) -> list[dict[str, Any]]:
    """The login most consoles have: user name and password when asked, then a shell."""
    return [
        {"name": "login", "expect": login_prompt, "send": "{{ console_user }}", "optional": True},
        {
            "name": "password",
            "expect": password_prompt,
            "send": "{{ console_pass }}",
            "optional": True,
            "timeout": 60,
            "retries": 1,
        },
        {"name": "shell", "expect": shell_prompt},
    ]


def console_plan(
    dialog: ConsoleDialog | None,
    defaults: dict[str, Any],
    user: str,
    password: str,
    file: str,
    where: str,
) -> ConsolePlan:
    """The dialog a node's console gets: given fields replace the defaults' whole.

    ``"login": []`` with no commands means no console dialog at all (a cloud
    image that a NoCloud seed prepares)."""
    given = dialog.model_dump(exclude_none=True) if dialog else {}
    merged = {**defaults, **given}
    steps = given.get("login")
    if steps is None and not PROMPTS & set(given):
        steps = defaults.get("login")
    if steps is None:
        steps = usual_login(
            merged["login_prompt"], merged["password_prompt"], merged["shell_prompt"]
        )
    login = [
        DialogStepPlan(
            **{
                **{k: v for k, v in step.items() if k in DialogStepPlan.model_fields},
                "name": step.get("name") or str(i + 1),
                "nudge": i == 0 if step.get("nudge") is None else step["nudge"],
            }
        )
        for i, step in enumerate(steps)
    ]
    console = ConsolePlan(
        user=user,
        password=password,
        login=login,
        **{k: merged.get(k, []) for k in ("ignore", "fail", *COMMAND_LISTS)},
    )
    _check(console, file, where)
    return console


def _check(console: ConsolePlan, file: str, where: str) -> None:
    """Regexes compile and templates render (Jinja2); the old ``{name}`` form is named."""
    if not console.login and any(getattr(console, name) for name in COMMAND_LISTS):
        raise SpecError(file, f"{where}.login", "no login dialog, but commands to type after it",
                        "give the login steps, or empty the command lists")  # fmt: skip
    for i, step in enumerate(console.login):
        _regex(step.expect, file, f"{where}.login[{i}].expect")
        if step.send is not None:
            _template(step.send, file, f"{where}.login[{i}].send")
    for field in ("ignore", "fail"):
        for i, pattern in enumerate(getattr(console, field)):
            _regex(pattern, file, f"{where}.{field}[{i}]")
    for name in COMMAND_LISTS:
        for i, template in enumerate(getattr(console, name)):
            _template(template, file, f"{where}.{name}[{i}]")


def _regex(pattern: str, file: str, path: str) -> None:
    problem = regex_problem(pattern)
    if problem:
        raise SpecError(file, path, problem, "fix the regex (Python syntax)")


def _template(template: str, file: str, path: str) -> None:
    old = _OLD_PLACEHOLDER.search(template)
    if old:
        name = old.group(1)
        raise SpecError(
            file, path, f"{{{name}}} is the old placeholder form",
            f"write {{{{ {name} }}}}: newtlab's templates are Jinja2",
        )  # fmt: skip
    try:
        render(template, {name: name for name in DIALOG_VARIABLES})
    except TemplateError as exc:
        raise SpecError(file, path, str(exc), "fix the Jinja2 template") from None
