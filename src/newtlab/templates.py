"""The one template language newtlab renders: Jinja2, with undefined names an error.

``shquote`` quotes a value for a POSIX shell; ``network`` turns an interface
address into its network (``10.1.0.7/24`` → ``10.1.0.0/24``). A template rendered with a
``directory`` may include, extend or import the templates in it (a startup
config shared by a role). A template is the user's code:
evaluating it can fail in any way (``{{ 1/0 }}``, ``{{ hostname + 1 }}``, a
macro that calls itself, an ``{% include %}`` with no file to include), and
each is a mistake in the spec, reported as a ``TemplateError`` like a syntax
error or an undefined name.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jinja2


class TemplateError(ValueError):
    """A template that does not parse or names a variable that is not there; says which."""


@cache
def _environment(directory: Path | None = None) -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(directory) if directory is not None else None
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,
        loader=loader,
    )  # fmt: skip
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    env.filters["network"] = lambda value: str(ipaddress.ip_interface(str(value)).network)
    return env


@lru_cache(maxsize=1024)
def _compiled(template: str, directory: Path | None = None) -> jinja2.Template:
    """Compiling costs ~0.5 ms; a lab renders the same few templates for each node."""
    return _environment(directory).from_string(template)


def render(template: str, variables: Mapping[str, Any], directory: Path | None = None) -> str:
    try:
        return _compiled(template, directory).render(**variables)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        known = ", ".join(sorted(variables))
        raise TemplateError(f"{exc.message} (variables: {known})") from None
    except RecursionError:
        raise TemplateError("it nests or calls itself too deeply") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"no template {exc.name!r} to include in {directory}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(exc.message or type(exc).__name__) from None
    except Exception as exc:  # whatever evaluating the user's expressions raised
        if "no loader" in str(exc):  # {% include %}, {% extends %}, {% import %}
            raise TemplateError("a template cannot include, extend or import another") from None
        raise TemplateError(f"evaluating it failed: {exc} ({type(exc).__name__})") from None
