"""Read a spec directory into validated models, or fail with a clear message.

Nothing here decides anything about the lab; it only reads the user's files
and checks that they are complete and consistent with each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import SpecError, SpecErrors
from .links import Link, resolve_links
from .models import DeviceProfile, PlatformsFile, PlatformSpec, TopologyFile

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ProfileFile:
    path: Path
    raw: bytes
    profile: DeviceProfile


@dataclass(frozen=True)
class Specs:
    """Everything newtlab read from one spec directory, validated."""

    directory: Path
    topology: TopologyFile
    platforms: PlatformsFile
    profiles: dict[str, ProfileFile]
    links: list[Link]

    def platform_name(self, device: str) -> str:
        return self.profiles[device].profile.platform or self.topology.platform

    def platform_of(self, device: str) -> PlatformSpec:
        return self.platforms.platforms[self.platform_name(device)]

    def platform_origin(self, device: str) -> str:
        """Which file gives ``device`` its platform, as a message tells the user."""
        if self.profiles[device].profile.platform:
            return f"profiles/{device}.json"
        return f"topology.json's default, as profiles/{device}.json names none"


def _json_path(loc: tuple[int | str, ...], data: Any = None) -> str:
    """``loc`` as a JSON path; an item of a list that has a ``name`` (a test of
    ``newtlab.validate``) is shown with it, as users find it in their file."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            data = data[part] if isinstance(data, list) and part < len(data) else None
            name = data.get("name") if isinstance(data, dict) else None
            if isinstance(name, str) and name:
                out += f" ({name})"
        else:
            out += f".{part}" if out else str(part)
            data = data.get(part) if isinstance(data, dict) else None
    return out or "(top level)"


_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove this field",
    "literal_error": "use one of the values listed",
}


def _validation_errors(file: str, exc: ValidationError, data: Any = None) -> SpecErrors:
    errors: list[SpecError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        # Drop pydantic's union/validator tags from the path; keep real keys.
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        # a whole object (a model-level rule) is not worth repeating
        if err["type"] != "missing" and not isinstance(err.get("input"), dict):
            message = f"{message} (got {json.dumps(err.get('input'))[:60]})"
        errors.append(
            SpecError(
                file, _json_path(loc, data), message, _FIXES.get(err["type"], "fix the value")
            )
        )
    return SpecErrors(errors)


def bad_text(data: Any) -> tuple[str, str] | None:
    """(JSON path, problem) of the first string or key of ``data`` that no file, command
    line or plan can carry: JSON may write a NUL (``"\\u0000"``) or half of a UTF-16
    surrogate pair (``"\\ud800"``). None when every one is text."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        at, value = stack.pop()
        if isinstance(value, str):
            problem = _text_problem(value)
            if problem:
                return at or "(top level)", problem
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                problem = _text_problem(key)
                if problem:  # the path would hold it too
                    return at or "(top level)", f"the key {key!a} {problem}"
                stack.append((f"{at}.{key}" if at else str(key), item))
        elif isinstance(value, list):
            stack.extend((f"{at}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return None


def _text_problem(text: str) -> str | None:
    if "\0" in text:
        return "holds a NUL character (\\u0000), which no file name or command can carry"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "holds an unpaired UTF-16 surrogate escape (\\ud800–\\udfff), which is no text"
    return None


def read_json(path: Path, what: str) -> tuple[bytes, Any]:
    """Bytes and parsed JSON of ``path``; a SpecError naming it if unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(str(path), "", f"{what} not found", "create it or check -S DIR") from None
    except OSError as exc:
        raise SpecError(str(path), "", f"cannot read {what}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise SpecError(str(path), "", f"{what} is not UTF-8 text", "save it as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise SpecError(
            str(path),
            f"line {exc.lineno}, column {exc.colno}",
            f"invalid JSON: {exc.msg}",
            "fix the syntax (a JSON linter shows where)",
        ) from None
    except ValueError as exc:  # a number longer than Python converts (4300 digits)
        problem = str(exc).split(";")[0]
        raise SpecError(
            str(path), "", f"invalid JSON: {problem}", "write a shorter number"
        ) from None
    except RecursionError:
        raise SpecError(str(path), "", "JSON is nested too deeply") from None
    bad = bad_text(data)
    if bad is not None:
        raise SpecError(str(path), bad[0], bad[1], "write text there (no \\u escapes of these)")
    return raw, data


def parse_model(model: type[M], path: Path, what: str) -> tuple[bytes, M]:
    raw, data = read_json(path, what)
    if not isinstance(data, dict):
        raise SpecError(str(path), "(top level)", "must be a JSON object", "wrap it in { }")
    try:
        return raw, model.model_validate(data)
    except ValidationError as exc:
        raise _validation_errors(str(path), exc, data) from None


def load_specs(directory: str | Path) -> Specs:
    """Load and cross-check ``topology.json``, ``platforms.json`` and profiles."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise SpecError(str(root), "", "spec directory not found", "pass an existing -S DIR")
    topo_path = root / "topology.json"
    _, topology = parse_model(TopologyFile, topo_path, "topology.json")
    _, platforms = parse_model(PlatformsFile, root / "platforms.json", "platforms.json")

    errors: list[SpecError] = []
    profiles: dict[str, ProfileFile] = {}
    for device in sorted(topology.devices):
        path = root / "profiles" / f"{device}.json"
        if not path.exists():
            errors.append(
                SpecError(
                    str(path),
                    "",
                    f"device {device!r} has no profile",
                    f'create profiles/{device}.json with at least a "platform" field, '
                    "or remove the device from topology.json",
                )
            )
            continue
        try:
            raw, profile = parse_model(DeviceProfile, path, "profile")
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        except SpecError as exc:
            errors.append(exc)
            continue
        profiles[device] = ProfileFile(path, raw, profile)
        platform = profile.platform or topology.platform
        if not platform:
            errors.append(
                SpecError(
                    str(path),
                    "platform",
                    f"device {device!r} names no platform",
                    'add "platform" to the profile or a top-level "platform" to topology.json',
                )
            )
        elif platform not in platforms.platforms:
            known = ", ".join(sorted(platforms.platforms)) or "none"
            where = "platform" if profile.platform else f"{topo_path}: platform"
            errors.append(
                SpecError(
                    str(path),
                    where,
                    f"unknown platform {platform!r}",
                    f"platforms.json defines: {known}",
                )
            )
    try:
        links = resolve_links(topology, str(topo_path))
    except SpecErrors as exc:
        errors.extend(exc.errors)
        links = []
    if errors:
        raise SpecErrors(errors)
    return Specs(root, topology, platforms, profiles, links)
