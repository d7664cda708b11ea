"""Boot patches (docs/design.md): which apply to a node, rendered from the plan alone.

A patch is a JSON descriptor — ``sonic_releases``, ``pre_commands``,
``disable_files``, ``files`` [{``template``, ``dest``}], ``redis`` [{``db``,
``template``}], ``post_commands`` — next to its template files. The resolution key is the
platform's ``dataplane``, or its name when it has none: newtlab's own
``patches/<key>/always/*.json`` then ``patches/<key>/<release>/*.json``
(release = ``vm_image_release``), each sorted by file name. A spec dir's
``patches/<key>/…`` adds patches; a file of the same name replaces newtlab's.
Every string is a Jinja2 template over the variables of ``patch_variables``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from shlex import quote
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from ..errors import SpecError
from ..spec.load import bad_text
from ..spec.models import PlatformSpec
from ..spec.names import is_safe_name
from ..templates import TemplateError, render
from .model import NicPlan, PatchFilePlan, PatchPlan, PatchRedisPlan
from .vhost_script import as_root

ALWAYS = "always"
SONIC_DEVICE_DIR = "/usr/share/sonic/device/x86_64-kvm_x86_64-r0"
_SPEED = re.compile(r"(\d{1,18})\s*([GM]?)", re.I)  # longer: not a speed (nor an int())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FilePatch(_Strict):
    template: str
    dest: str


class RedisPatch(_Strict):
    db: int
    template: str


# A release as SONiC's build_version begins: "202505", "master" (a plain word: it goes in a shell
# `case` pattern).
Release = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]


class BootPatch(_Strict):
    description: str = ""
    sonic_releases: list[Release] = []
    pre_commands: list[str] = []
    disable_files: list[str] = []
    files: list[FilePatch] = []
    redis: list[RedisPatch] = []
    post_commands: list[str] = []


def port_speed(default_speed: str) -> int:
    """Mb/s, as SONiC writes it: "100G" → 100000, "25000" → 25000, "" → 0."""
    m = _SPEED.fullmatch(default_speed.strip())
    if not m:
        return 0
    return int(m.group(1)) * {"G": 1000, "M": 1, "": 1}[m.group(2).upper()]


def patch_variables(
    node: str, platform_name: str, platform: PlatformSpec, nics: list[NicPlan]
) -> dict[str, Any]:
    """What every template may use; all from the plan, nothing asked of the VM."""
    data = nics[1:]
    return {
        "node": node,
        "platform": platform_name,
        "dataplane": platform.dataplane,
        "release": platform.vm_image_release,
        "num_ports": len(data),
        "pci_addrs": [nic.pci for nic in data],
        "port_names": [nic.guest for nic in data],
        "hwsku_dir": f"{SONIC_DEVICE_DIR}/{platform.hwsku}",
        "port_speed": port_speed(platform.default_speed),
    }


def _builtin_root() -> Traversable:
    return resources.files("newtlab").joinpath("patches")


Directory = Traversable | Path


def _descriptors(root: Directory, key: str, group: str) -> dict[str, Directory]:
    """File name → the directory holding it (and its templates)."""
    directory = root.joinpath(key).joinpath(group)
    if not directory.is_dir():
        return {}
    return {f.name: directory for f in directory.iterdir() if f.name.endswith(".json")}


def resolve_patches(key: str, release: str, spec_dir: Path) -> list[tuple[str, Directory, bool]]:
    """(file name, its directory, is built-in) in application order."""
    found: list[tuple[str, Directory, bool]] = []
    if not is_safe_name(key):  # a platform name no directory has (the others are checked)
        return found
    for group in [ALWAYS, release] if release else [ALWAYS]:
        chosen: dict[str, tuple[Directory, bool]] = {
            name: (path, True) for name, path in _descriptors(_builtin_root(), key, group).items()
        }
        chosen.update(
            {n: (p, False) for n, p in _descriptors(spec_dir / "patches", key, group).items()}
        )
        found += [(name, *chosen[name]) for name in sorted(chosen)]
    return found


def render_commands(templates: Iterable[str], variables: Mapping[str, Any]) -> list[str]:
    """Each rendered; one that renders to nothing (``{% if %}`` false) is left out."""
    rendered = (render(t, variables) for t in templates)
    return [command for command in rendered if command.strip()]


def render_patch(
    name: str, directory: Directory, builtin: bool, variables: Mapping[str, Any]
) -> PatchPlan:
    """The patch with every template rendered; SpecError naming file and field on failure."""
    descriptor = directory.joinpath(name)
    where = f"built-in:{_tail(descriptor)}" if builtin else str(descriptor)
    field = "(file)"
    try:
        data = json.loads(descriptor.read_text())
        bad = bad_text(data)
        if bad is not None:
            raise ValueError(": ".join(bad))
        patch = BootPatch.model_validate(data)
        field = "pre_commands"
        pre = render_commands(patch.pre_commands, variables)
        field = "disable_files"
        disable = render_commands(patch.disable_files, variables)
        files = []
        for i, item in enumerate(patch.files):
            field = f"files[{i}]"
            content = _render_file(directory, item.template, variables)
            files.append(PatchFilePlan(dest=render(item.dest, variables), content=content))
        redis = []
        for i, entry in enumerate(patch.redis):
            field = f"redis[{i}]"
            commands = _render_file(directory, entry.template, variables)
            redis.append(PatchRedisPlan(db=entry.db, commands=commands))
        field = "post_commands"
        post = render_commands(patch.post_commands, variables)
    except (OSError, ValueError, ValidationError, TemplateError, RecursionError) as exc:
        raise SpecError(where, field, f"boot patch {name}: {_problem(exc)}", _FIX) from None
    return PatchPlan(
        name=name,
        source=where,
        description=patch.description,
        sonic_releases=patch.sonic_releases,
        pre_commands=pre,
        disable_files=disable,
        files=files,
        redis=redis,
        post_commands=post,
    )


def _render_file(directory: Directory, template: str, variables: Mapping[str, Any]) -> str:
    """A template file next to the descriptor, rendered; a failure names the file."""
    try:
        return render(directory.joinpath(template).read_text(), variables)
    except (OSError, ValueError) as exc:  # TemplateError and UnicodeDecodeError are ValueErrors
        raise TemplateError(f"template {template}: {exc}") from None


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):  # each wrong field, as the descriptor names it
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
    if isinstance(exc, RecursionError):
        return "JSON is nested too deeply"
    return str(exc)


_FIX = "see docs/boot.md, 'Boot patches', for the descriptor's fields and variables"


def _tail(descriptor: Directory) -> str:
    """``<key>/<group>/<file>``: where a descriptor sits under a patches directory."""
    parts = str(descriptor).replace("\\", "/").split("/")
    return "/".join(parts[-3:])


@dataclass(frozen=True)
class PatchStep:
    """One command of a patch, in the documented order; ``shown`` is how a failure names it."""

    kind: str  # pre_commands, disable_files, files, redis, post_commands
    shown: str
    command: str
    stdin: str | None = None


# redis-cli exits 0 after a refused command; its reply says so.
_REDIS = (
    'out=$(redis-cli -n {db}) || exit $?; printf "%s\\n" "$out"; '
    '! printf "%s\\n" "$out" | grep -q "^(error)\\|^ERR "'
)


SONIC_VERSION_FILE = "/etc/sonic/sonic_version.yml"
# The release is what build_version begins with: "202505.1057313-…" → 202505, "master.0-…" →
# master; a release tag names its date ("20250510.04" → 202505).
_RELEASE_CHECK = r"""v=
if [ -r FILE ]; then
  while IFS= read -r line; do
    case $line in
      build_version:*) v=$(printf %s "${line#build_version:}" | tr -d "\"' \t"); break ;;
    esac
  done < FILE
fi
r=${v%%.*}
case $r in [0-9][0-9][0-9][0-9][0-9][0-9]*) r=$(printf %.6s "$r") ;; esac
case $r in KNOWN) exit 0 ;; esac
if [ -z "$v" ]; then echo "cannot tell the image's SONiC release: no build_version in FILE"
else echo "this image is SONiC $r (build_version $v)"; fi
echo REFUSAL
exit 1
"""


def release_check(patch: PatchPlan) -> PatchStep | None:
    """The step that refuses a patch written for other SONiC releases than the image's."""
    if not patch.sonic_releases:
        return None
    known = ", ".join(patch.sonic_releases)
    where = patch.source
    if patch.source.startswith("built-in:"):  # a spec dir's file of the same name replaces it
        tail = patch.source.removeprefix("built-in:")
        where = (
            f"a copy in your spec dir's patches/{tail.rsplit('/', 1)[0]}/ (copy "
            f"{_builtin_root().joinpath(tail)} and the files it names)"
        )
    refusal = (
        f"{patch.name} was written for SONiC {known} only, so no boot patch was applied: "
        f"check it against this release, then add the release to its sonic_releases in {where}"
    )
    script = (
        _RELEASE_CHECK.replace("FILE", SONIC_VERSION_FILE)
        .replace("KNOWN", "|".join(patch.sonic_releases))
        .replace("REFUSAL", quote(refusal))
    )
    return PatchStep("sonic_releases", known, f"sh -c {quote(script)}")


def patch_steps(patch: PatchPlan) -> list[PatchStep]:
    """What runs over SSH for one patch: commands as the SSH user, file changes as root."""
    steps = [PatchStep("pre_commands", c, c) for c in patch.pre_commands]
    for path in patch.disable_files:
        p = quote(path)
        script = f"if [ -e {p} ]; then mv -f {p} {p}.disabled; fi"
        steps.append(PatchStep("disable_files", path, as_root(f"sh -c {quote(script)}")))
    for file in patch.files:
        parent = quote(str(PurePosixPath(file.dest).parent))
        script = f"mkdir -p {parent} && cat > {quote(file.dest)}"
        steps.append(PatchStep("files", file.dest, as_root(f"sh -c {quote(script)}"), file.content))
    for entry in patch.redis:
        script = _REDIS.format(db=entry.db)
        steps.append(PatchStep("redis", f"db {entry.db}", f"sh -c {quote(script)}", entry.commands))
    steps += [PatchStep("post_commands", c, c) for c in patch.post_commands]
    return steps
