"""The one template language newtlab renders: Jinja2, with undefined names an error.

``shquote`` quotes a value for a POSIX shell.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

import jinja2


class TemplateError(ValueError):
    """A template that does not parse or names a variable that is not there; says which."""


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    return env


@lru_cache(maxsize=1024)
def _compiled(template: str) -> jinja2.Template:
    """Compiling costs ~0.5 ms; a lab renders the same few templates for each node."""
    return _environment().from_string(template)


def render(template: str, variables: Mapping[str, Any]) -> str:
    try:
        return _compiled(template).render(**variables)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        known = ", ".join(sorted(variables))
        raise TemplateError(f"{exc.message} (variables: {known})") from None
