"""Fuzzing the spec files: whatever a spec directory holds, loading it never crashes.

Every spec directory of the repository (``examples/*``, ``tests/fixtures/specs/*``)
and one written here that uses every kind of field (``RICH``: a server pool, link
settings, console dialogs, readiness probes, startup configs, boot patches, catalog
bases) is mutated at random — a value replaced by one of another type or shape, a
key deleted, renamed, added or duplicated, a list entry duplicated, a file
truncated, made invalid JSON or not UTF-8, deleted or added — and loaded with
``Lab.load``. It must plan — a plan that reads back from its JSON, as deploy
stores it — or fail with a ``NewtlabError`` whose message names (at least by its
base name) a file that was mutated. Anything else — a traceback, a hang, a plan
that does not read back — fails with the mutations shown.

In the suite the search is short and deterministic (``derandomize``: the same 250
examples every run, about 3 s here). A longer, random search::

    NEWTLAB_FUZZ_EXAMPLES=5000 .venv/bin/pytest -q tests/unit/test_spec_fuzz.py \\
        -p no:cacheprovider -k mutated

(any value turns derandomize off; add ``--hypothesis-seed=N`` to repeat a run).
Below the search, one small test per kind of crash it found.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newtlab.errors import NewtlabError
from newtlab.lab import Lab
from newtlab.plan.model import Plan

ROOT = Path(__file__).parents[2]
LONG_RUN = os.environ.get("NEWTLAB_FUZZ_EXAMPLES", "")
MAX_EXAMPLES = int(LONG_RUN) if LONG_RUN else 250
EXAMPLE_TIMEOUT = 20.0  # seconds: a spec that makes loading hang is a bug too
HUGE = "@@HUGE-NUMBER@@"  # written as a 5000-digit JSON number (json.dumps cannot)

# -- the corpus --------------------------------------------------------------------------

Files = dict[str, Any]  # relative path → parsed JSON, or bytes (templates, broken files)


@dataclass(frozen=True)
class Raw:
    """A file's bytes, written as they are."""

    data: bytes

    def __repr__(self) -> str:
        return f"Raw({self.data[:120]!r}{'…' if len(self.data) > 120 else ''})"


def _read_by_newtlab(rel: str) -> bool:
    return rel in ("topology.json", "platforms.json") or rel.startswith(
        ("profiles/", "configs/", "patches/")
    )


def _load_dir(directory: Path) -> Files:
    files: Files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if not _read_by_newtlab(rel):
            continue
        data = path.read_bytes()
        files[rel] = json.loads(data) if rel.endswith(".json") else Raw(data)
    return files


def _repository_specs() -> dict[str, Files]:
    found: dict[str, Files] = {}
    for parent in (ROOT / "examples", ROOT / "tests" / "fixtures" / "specs"):
        for directory in sorted(p for p in parent.iterdir() if p.is_dir()):
            spec = directory if (directory / "topology.json").exists() else directory / "specs"
            found[directory.name] = _load_dir(spec)
    return found


# fmt: off
RICH: Files = {
    "topology.json": {
        "version": "1.0",
        "description": "every kind of field newtlab reads",
        "platform": "sw",
        "devices": {
            "a": {"interfaces": {"Gi1": {"ip": "10.1.0.0/31"}, "Gi2": {"ip": "10.2.0.1/24"},
                                 "Gi3": {}}},
            "b": {"interfaces": {"Ethernet0": {"ip": "10.1.0.1/31"}, "Ethernet1": {}}},
            "c": {"interfaces": {"ens4": {}}},
            "h1": {"interfaces": {"eth0": {}}},
            "h2": {"interfaces": {"eth0": {}, "eth1": {}}},
        },
        "links": [
            {"a": "a:Gi1", "z": "b:Ethernet0"},
            {"a": "a:Gi2", "z": "h1:eth0"},
            {"a": "b:Ethernet1", "z": "h2:eth1"},
            {"a": "a:Gi3", "z": "c:ens4"},
        ],
        "newtlab": {
            "link_port_base": 23000,
            "console_port_base": 33000,
            "ssh_port_base": 43000,
            "servers": [
                {"name": "s1", "address": "10.9.0.1", "max_nodes": 4, "user": "lab",
                 "ssh_port": 2222, "identity_file": "~/.ssh/id_lab",
                 "source_address": "10.9.1.1"},
                {"name": "s2", "address": "lab-2.example"},
            ],
            "links": {
                "a:Gi1": {"delay": "10ms", "jitter": "2ms", "loss": "1%", "rate": "100mbit",
                          "direction": "out"},
                "h2:eth1": {"down": True, "corrupt": "0.1%", "duplicate": "1%"},
            },
        },
    },
    "platforms.json": {
        "version": "1.0",
        "platforms": {
            "sw": {
                "hwsku": "Fuzz-32x100",
                "description": "a switch with every field",
                "port_count": 8,
                "default_speed": "100G",
                "breakouts": ["4x25G"],
                "device_type": "switch",
                "network_os": "fuzz.os",
                "vm_image": "images/sw.qcow2",
                "vm_image_sha256": "0" * 64,
                "vm_memory": 2048,
                "vm_cpus": 2,
                "vm_nic_driver": "virtio-net-pci",
                "vm_disk_driver": "sata",
                "vm_interface_map": "custom",
                "vm_interface_map_custom": {"Gi1": 1, "Gi2": 2, "Gi3": 3},
                "vm_nic_mac": "shared",
                "vm_cpu_features": "+avx2,-vmx",
                "vm_credentials": {"user": "admin", "pass": "admin"},
                "vm_boot_timeout": 300,
                "vm_extra_devices": ["virtio-rng-pci"],
                "vm_smbios": ["type=1,product=fuzz"],
                "vm_firmware": "uefi",
                "vm_max_nics": 8,
                "vm_first_data_nic": 1,
                "dataplane": "fuzzdp",
                "vm_image_release": "r1",
                "vm_post_boot": ["echo {{ node }} {{ num_ports }}"],
                "vm_readiness": [
                    {"console": "ready>"},
                    {"command": "show version", "match": "Fuzz", "timeout": 30},
                    {"ssh": True},
                ],
                "vm_console": {
                    "login": [
                        {"name": "user", "expect": "Username:", "send": "{{ console_user }}",
                         "optional": True, "timeout": 60, "retries": 1},
                        {"expect": "Password:", "send": "{{ console_pass }}", "nudge": False},
                        {"name": "shell", "expect": "[\\w.-]+#"},
                    ],
                    "ignore": ["%LOG-[^\\n]*\\n"],
                    "fail": ["% Login invalid"],
                    "bootstrap": ["hostname {{ hostname }}"],
                    "create_user": ["username {{ ssh_user }} secret {{ ssh_pass }}"],
                    "install_key": ["key {{ ssh_pubkey }}"],
                    "set_password": [],
                },
                "vm_startup_config": {"method": "iso", "file": "config/startup.cfg",
                                      "label": "cfg", "drive": "usb",
                                      "directories": ["license"], "timeout": 60},
                "source": {"vm_image": "fuzz"},
                "verified": False,
            },
            "rtr": {
                "device_type": "router",
                "vm_image": "~/images/rtr.qcow2",
                "vm_interface_map": "sequential",
                "vm_nic_mac": "per-nic",
                "vm_credentials": {"user": "cisco", "pass": "cisco"},
                "vm_console": {"login_prompt": "Username:", "password_prompt": "Password:",
                               "shell_prompt": "#$"},
                "vm_startup_config": {"method": "console", "prompt": "\\(config[^)]*\\)#|#",
                                      "before": ["configure terminal"], "after": ["end"],
                                      "fail": ["% Invalid"]},
            },
            "cloud": {"base": "linux", "vm_memory": 512},
            "vhost": {"base": "newtlab-host", "device_type": "host"},
        },
    },
    "profiles/a.json": {"platform": "sw", "ssh_user": "admin", "ssh_pass": "pw",
                        "vm_host": "s1", "vm_memory": 4096,
                        "vm_post_boot": ["echo {{ platform }}"]},
    "profiles/b.json": {"platform": "rtr", "vm_image": "/images/b.qcow2",
                        "vm_image_sha256": "a" * 64, "mgmt_ip": "127.0.0.1"},
    "profiles/c.json": {"platform": "cloud", "vm_cpus": 2},
    "profiles/h1.json": {"platform": "vhost", "vm_host": "s2", "host_ip": "10.2.0.10/24",
                         "host_gateway": "10.2.0.1"},
    "profiles/h2.json": {"platform": "vhost", "vm_host": "s2"},
    "configs/a.cfg": Raw(
        b"hostname {{ hostname }}\n{% for i in interfaces %}interface {{ i.name }}\n"
        b" ip address {{ i.ip }}\n{% endfor %}mgmt {{ mgmt_address }} via {{ mgmt_gateway }}\n"
    ),
    "configs/b.cfg": Raw(b"hostname {{ hostname }}\n"),
    "configs/c.cfg": Raw(b"#cloud-config\nhostname: {{ hostname }}\n"),
    "patches/fuzzdp/always/10-base.json": {
        "description": "every field of a boot patch",
        "pre_commands": ["echo {{ node }}"],
        "disable_files": ["/etc/fuzz.conf"],
        "files": [{"template": "port.tmpl", "dest": "{{ hwsku_dir }}/port_config.ini"}],
        "redis": [{"db": 4, "template": "redis.tmpl"}],
        "post_commands": ["echo {{ port_speed }}"],
    },
    "patches/fuzzdp/always/port.tmpl": Raw(
        b"{% for p in port_names %}{{ p }} {{ pci_addrs[loop.index0] }}\n{% endfor %}"
    ),
    "patches/fuzzdp/always/redis.tmpl": Raw(
        b"HSET DEVICE_METADATA|localhost hostname {{ node }}\n"
    ),
    "patches/fuzzdp/r1/20-release.json": {"post_commands": ["echo {{ release }}"]},
}
# fmt: on

CORPUS: dict[str, Files] = {**_repository_specs(), "rich": RICH}


def _subvalues(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _subvalues(item)
    elif isinstance(value, list):
        for item in value:
            yield from _subvalues(item)


def _strings(value: Any) -> Iterator[str]:
    for sub in _subvalues(value):
        if isinstance(sub, str):
            yield sub
        elif isinstance(sub, dict):
            yield from sub


# Values and names already in the specs: the right shape in the wrong place.
_DOCS = [doc for files in CORPUS.values() for doc in files.values() if not isinstance(doc, Raw)]
POOL = sorted({json.dumps(sub, sort_keys=True) for doc in _DOCS for sub in _subvalues(doc)},
              key=lambda text: (len(text), text))[:3000]  # fmt: skip
NAMES = sorted({s for doc in _DOCS for s in _strings(doc) if len(s) < 40})

# -- the mutations -----------------------------------------------------------------------

NASTY_STRINGS = [
    "", " ", "x", "{{ x", "{% for %}", "{{ x }}", "{{ 1/0 }}", "{{ node + 1 }}", "}}", "{#",
    "{% include 'x' %}", "{% extends 'y' %}", "{{ hostname }}", "{{ undefined.attr }}",
    "{node}", "{ssh_user}", "a/b", "a b", "../etc", "/", "~", "~/", "ünïcödé", "名前",
    "\ud800", "\x00", "a\nb", "-x", ";rm -rf", "$(id)", "ghost:Ethernet0", "r1:", ":eth1",
    "a:b:c", "r1:eth1", "a:Gi1", "switch1:Ethernet0", "host1:eth0", "Ethernet99999999999",
    "eth99999999", "Ethernet-1", "Ethernet4", "Ethernet3", "eth0", "Gi9", "(", "[", "*", "\\",
    "a" * 300, "10.0.0.1", "10.0.0.1/33", "10.0.0.0/8", "10.1.0.2/30", "::1", "fe80::1/64",
    "not an ip", "a..b", "a" * 70 + ".example", "1%", "-5ms", "20ms", "101%", "1bps",
    "1e999", "NaN", "100G", "25000", "99999999999999999999G", "custom", "linux", "sequential",
    "stride-4", "host", "switch", "router", "iso", "console", "nocloud", "uefi", "bios",
    "sata", "ide", "usb", "shared", "per-nic", "out", "0" * 64, "newtlab-host", "linux",
    "sonic-vs", "no-such-base", "hostvm-0", "local", "ciscovs", "vs", HUGE, "a{99999999999}",
    "(" * 600 + ")" * 600, "{{ " + "(" * 600 + "1" + ")" * 600 + " }}", "9" * 400 + "ms",
    "1" * 400 + "mbit", "1" * 5000, "1" * 5000 + "G", "Ethernet" + "9" * 5000,
]  # fmt: skip
NASTY_SCALARS: list[Any] = [
    None, True, False, 0, 1, -1, 2, 3, 4, 31, 32, 1.5, -0.5, 1023, 1024, 65535, 65536,
    2**31, 2**63, 10**30, -(10**30), 1e308, -1e308, float("inf"), float("nan"),
]  # fmt: skip


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


CONTAINERS: list[Any] = [
    [], {}, [None], [""], ["x", "x"], [1, 2], [[]], [{}], {"": ""}, {"x": None},
    {"user": "u", "pass": "p"}, {"a": "ghost:eth0", "z": "ghost:eth1"}, {"expect": "("},
    {"method": "iso"}, {"console": "x", "ssh": True}, {"template": "../../x", "dest": "/x"},
    {"db": "zero", "template": 1}, _deep(40), _deep(400),
]  # fmt: skip


def pick(choices: Any) -> st.SearchStrategy[Any]:
    """One of ``choices``, about evenly (``sampled_from`` mostly takes the first ones)."""
    seq = list(choices)
    return st.integers(0, 2**16 - 1).map(lambda i: seq[i % len(seq)])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
NASTY = st.one_of(
    pick(NASTY_STRINGS),
    pick(NASTY_SCALARS),
    pick(CONTAINERS).map(copy.deepcopy),
    pick(POOL).map(json.loads),
    pick(NAMES),
    JSON_VALUES,
)
KEY_NAMES = st.one_of(pick(NASTY_STRINGS[:60]), pick(NAMES), st.text(max_size=6))
TEMPLATES = pick(
    [
        b"",
        b"{{ x",
        b"{% for %}",
        b"{{ nope }}",
        b"{{ 1/0 }}",
        b"{{ hostname + 1 }}",
        b"{% include 'x' %}",
        b"{% extends 'y' %}",
        b"{{ interfaces[99].name }}",
        b"{{ interfaces | map(attribute='nope') | list }}",
        b"{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        b"{{ hostname|int(1)|string|join }}",
        b"{{ x.y.z }}",
        b"\xff\xfe not utf-8",
        b"\x00",
        b"{{ port_names[0] }} {{ pci_addrs[5] }}",
        b"{{ 'a' ~ node }}",
        b"{% for i in 5 %}{% endfor %}",
        b"{{ {}.x.y }}",
        b"{{ range(3)|sum + 'a' }}",
        b"{{ (1,2)|first|attr('x')|length }}",
    ]
)

Path_ = tuple[str | int, ...]


def _paths(value: Any, at: Path_ = ()) -> Iterator[Path_]:
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*at, i))


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@dataclass
class Mutated:
    """A spec directory's files after the mutations described by ``steps``."""

    spec: str
    files: Files
    steps: list[str] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)  # relative paths of mutated files

    def __repr__(self) -> str:
        return f"Mutated({self.spec!r}: " + "; ".join(self.steps) + ")"


def _endpoints(files: Files) -> st.SearchStrategy[str]:
    """``device:interface`` strings: existing devices with interfaces they have or lack."""
    devices = _device_names(files) or ["ghost"]
    ifaces = sorted({i for d in _interfaces(files).values() for i in d}) or ["eth1"]
    return st.builds(
        lambda d, i: f"{d}:{i}",
        pick([*devices, "ghost", "hostvm-0"]),
        pick([*ifaces, "Ethernet7", "eth9", "Gi9", "eth0", "a b", "x:y"]),
    )


def _edits(value: str) -> list[str]:
    """``value`` a little wrong: longer, shorter, another case, a suffix, a huge number."""
    return [
        value + "x",
        value[:-1],
        value.upper(),
        value + "/24",
        value + ":eth1",
        value.replace(":", "-"),
        value + " ",
        "{{ " + value + " }}",
        value * 3,
        value + "99999999999",
        "9" * 400 + value,
        value + "9" * 5000,
    ]


_IDENTIFIER = re.compile(r"[A-Za-z0-9_./-]{1,40}")


def _identifiers(files: Files) -> list[str]:
    """The names a spec refers to things by (devices, interfaces, platforms, servers …)."""
    found = {
        text
        for doc in files.values()
        if not isinstance(doc, Raw)
        for text in _strings(doc)
        if _IDENTIFIER.fullmatch(text) and not text.isdigit()
    }
    found |= {part for rel in files for part in PurePosixPath(rel).with_suffix("").parts[1:]}
    return sorted(found)


def _file_safe(name: str) -> bool:
    """A name the file system takes (the loader must then say what is wrong with it)."""
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        return False
    return 0 < size < 200 and name not in (".", "..") and not set(name) & {"/", "\0"}


def _rename_everywhere(files: Files, old: str, new: str) -> list[str]:
    """Rename ``old`` in every key, value, ``device:interface`` and file name (profiles,
    configs, patch directories); the files changed, by their new names."""

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            if value == old:
                return new
            device, sep, iface = value.partition(":")
            if sep and device == old:
                return f"{new}:{iface}"
            if sep and iface == old:
                return f"{device}:{new}"
            return value
        if isinstance(value, dict):
            return {fix(k): fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    touched = []
    for rel in list(files):
        path = PurePosixPath(rel)
        parts = list(path.parts)
        if _file_safe(new):
            if parts[0] in ("profiles", "configs") and path.stem == old:
                parts[-1] = new + path.suffix
            if parts[0] == "patches":
                parts[1:-1] = [new if part == old else part for part in parts[1:-1]]
        value = files[rel]
        changed = value if isinstance(value, Raw) else fix(value)
        moved = "/".join(parts)
        if moved != rel or _serialize(changed) != _serialize(value):
            del files[rel]
            files[moved] = changed
            touched.append(moved)
    return touched


def _like(draw: st.DrawFn, value: Any, files: Files) -> Any:
    """A value of the same JSON type as ``value``, but an unusual one."""
    if isinstance(value, bool):
        return draw(pick([not value, 0, 1, "true"]))
    if isinstance(value, int | float):
        return draw(
            pick([v for v in NASTY_SCALARS if isinstance(v, int | float)])
            | pick([value - 1, value + 1, -value, value * 1000, value / 2])
        )
    if isinstance(value, str):
        return draw(st.one_of(pick(NASTY_STRINGS), pick(NAMES),
                              pick(_edits(value)), _endpoints(files)))  # fmt: skip
    if isinstance(value, list):
        return draw(pick([[], [None], value + value, value[::-1], [value]]))
    if isinstance(value, dict):
        return draw(pick([{}, {"": value}, dict.fromkeys(value, "")]))
    return draw(NASTY)


def _mutate_json(draw: st.DrawFn, doc: Any, files: Files) -> tuple[Any, str]:
    """One change somewhere in a parsed JSON document; the new document and what it was."""
    paths = list(_paths(doc))
    path = draw(pick(paths))
    shown = "".join(f"[{p!r}]" for p in path) or "(top)"
    target = _get(doc, path)
    ops = ["replace", "replace", "like", "like", "like", "swap"]
    if path:
        ops += ["delete", "delete"]
    if isinstance(target, dict):
        ops += ["add_key", "add_key"] + (["rename_key", "duplicate_entry"] if target else [])
    if isinstance(target, list) and target:
        ops += ["duplicate_entry", "truncate_list"]
    op = draw(pick(ops))
    if op in ("replace", "like"):
        value = draw(NASTY) if op == "replace" else _like(draw, target, files)
        if not path:
            return value, f"{shown} = {value!r}"
        _get(doc, path[:-1])[path[-1]] = value
        return doc, f"{shown} = {value!r}"
    if op == "swap":
        value = json.loads(draw(pick(POOL)))
        if not path:
            return value, f"{shown} = {value!r}"
        _get(doc, path[:-1])[path[-1]] = value
        return doc, f"{shown} = {value!r} (a value from a spec)"
    if op == "delete":
        del _get(doc, path[:-1])[path[-1]]
        return doc, f"del {shown}"
    if op == "add_key":
        key, value = draw(KEY_NAMES), draw(NASTY)
        target[key] = value
        return doc, f"{shown}[{key!r}] = {value!r} (added)"
    if op == "rename_key":
        old = draw(pick(sorted(target)))
        new = draw(KEY_NAMES)
        target[new] = target.pop(old)
        return doc, f"{shown}: key {old!r} renamed {new!r}"
    if op == "duplicate_entry":
        if isinstance(target, list):
            i = draw(st.integers(0, len(target) - 1))
            target.append(copy.deepcopy(target[i]))
            return doc, f"{shown}: entry [{i}] duplicated"
        old = draw(pick(sorted(target)))
        new = draw(KEY_NAMES)
        target[new] = copy.deepcopy(target[old])
        return doc, f"{shown}: entry {old!r} copied as {new!r}"
    assert op == "truncate_list"
    keep = draw(st.integers(0, len(target) - 1))
    del target[keep:]
    return doc, f"{shown}: list cut to {keep} entries"


def _serialize(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.data
    text = json.dumps(value, indent=2)
    return text.replace(json.dumps(HUGE), "1" + "0" * 5000).encode()


def _mutate_bytes(draw: st.DrawFn, data: bytes, is_json: bool) -> tuple[Raw, str]:
    ops = ["truncate", "junk", "non_utf8"]
    if not is_json:
        ops += ["template", "append_template"]
    op = draw(pick(ops))
    if op == "truncate":
        cut = draw(st.integers(0, max(len(data) - 1, 0)))
        return Raw(data[:cut]), f"truncated to {cut} bytes"
    if op == "junk":
        at = draw(st.integers(0, len(data)))
        junk = draw(pick([b"}", b",", b"]", b"{", b'"', b"\x00", b"NaN", b"//",
                                     b"\xc3\xa4", b"1e999", b"-"]))  # fmt: skip
        return Raw(data[:at] + junk + data[at:]), f"{junk!r} inserted at byte {at}"
    if op == "non_utf8":
        at = draw(st.integers(0, len(data)))
        return Raw(data[:at] + b"\xff\xfe" + data[at:]), f"non-UTF-8 bytes at byte {at}"
    template = draw(TEMPLATES)
    if op == "template":
        return Raw(template), f"replaced by {template!r}"
    return Raw(data + b"\n" + template), f"{template!r} appended"


def _device_names(files: Files) -> list[str]:
    topology = files.get("topology.json")
    if isinstance(topology, dict) and isinstance(topology.get("devices"), dict):
        return sorted(str(d) for d in topology["devices"])
    return []


def _interfaces(files: Files) -> dict[str, list[str]]:
    topology = files.get("topology.json")
    devices = topology.get("devices") if isinstance(topology, dict) else None
    if not isinstance(devices, dict):
        return {}
    return {
        str(name): sorted(str(i) for i in device["interfaces"])
        for name, device in devices.items()
        if isinstance(device, dict) and isinstance(device.get("interfaces"), dict)
    }


def _patch_keys(files: Files) -> list[str]:
    keys = {"fuzzdp", "ciscovs", "vpp", "sonic-vs"}
    platforms = files.get("platforms.json")
    if isinstance(platforms, dict) and isinstance(platforms.get("platforms"), dict):
        keys |= {str(name) for name in platforms["platforms"]}
    return sorted(keys)


@st.composite
def mutated_specs(draw: st.DrawFn) -> Mutated:
    name = draw(pick(sorted(CORPUS)))
    mutated = Mutated(name, copy.deepcopy(CORPUS[name]))
    files = mutated.files
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            pick(["json"] * 16 + ["rename"] * 3 + ["bytes", "delete_file", "add_file", "add_file"])
        )
        if kind == "rename":
            names = _identifiers(files)
            if not names:
                continue
            old = draw(pick(names))
            new = draw(st.one_of(pick(_edits(old)), pick(NASTY_STRINGS[:70]), pick(NAMES)))
            touched = _rename_everywhere(files, old, new)
            mutated.steps.append(f"{old!r} renamed {new!r} everywhere ({', '.join(touched)})")
            mutated.touched += touched
            continue
        if kind == "add_file":
            devices = _device_names(files) or ["ghost"]
            device = draw(pick([*devices, "ghost", "hostvm-0", "a b"]))
            key = draw(pick(_patch_keys(files)))
            group = draw(pick(["always", "r1", "202505"]))
            rel = draw(pick([f"profiles/{device}.json", f"configs/{device}.cfg",
                                        f"patches/{key}/{group}/99-fuzz.json",
                                        f"patches/{key}/{group}/port.tmpl"]))  # fmt: skip
            value = draw(NASTY) if rel.endswith(".json") else Raw(draw(TEMPLATES))
            files[rel] = value
            mutated.steps.append(f"{rel} = {value!r} (new file)")
            mutated.touched.append(rel)
            continue
        big = [rel for rel in ("topology.json", "platforms.json") if rel in files]
        weighted = big * 3 if kind == "json" else []  # the big files' fields more often
        rel = draw(pick(weighted + sorted(files)))
        mutated.touched.append(rel)
        if kind == "delete_file":
            del files[rel]
            mutated.steps.append(f"{rel} deleted")
        elif kind == "bytes" or isinstance(files[rel], Raw):
            files[rel], step = _mutate_bytes(draw, _serialize(files[rel]), rel.endswith(".json"))
            mutated.steps.append(f"{rel}: {step}")
        else:
            files[rel], step = _mutate_json(draw, files[rel], files)
            mutated.steps.append(f"{rel}{step}" if step.startswith("[") else f"{rel}: {step}")
    return mutated


# -- loading -----------------------------------------------------------------------------

_real_getaddrinfo = socket.getaddrinfo


def _fake_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    """No DNS in tests: a name resolves to a documentation address (as real lookups do,
    the name is IDNA-encoded first, which fails for a malformed one)."""
    if isinstance(host, str):
        host.encode("idna")
    return _real_getaddrinfo("192.0.2.1", port, *args, **kwargs)


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """TimeoutError after ``seconds``; the alarm set before (pytest-timeout's) goes on."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"loading took over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            left = outer - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def write(files: Files, directory: Path) -> Path:
    for rel, value in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_serialize(value))
    return directory


def load_problem(files: Files, touched: list[str]) -> str | None:
    """Why loading ``files`` is wrong (a crash, or a message naming no mutated file); None
    when it planned or failed as it must."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = write(files, Path(tmp) / "spec")
        spec.mkdir(exist_ok=True)
        try:
            with (
                mock.patch.object(socket, "getaddrinfo", _fake_getaddrinfo),
                _time_limit(EXAMPLE_TIMEOUT),
            ):
                plan = Lab.load(spec, name="fuzz", accel="tcg").plan
            # deploy stores the plan as JSON and later commands read it back
            if Plan.model_validate_json(plan.to_json()) != plan:
                return f"the plan does not read back from its JSON:\n{plan.to_json()}"
        except NewtlabError as exc:
            message = str(exc)
            if not any(Path(rel).name in message for rel in touched):
                return f"{type(exc).__name__} names none of {touched}:\n{message}"
        except BaseException as exc:  # any other exception is the bug sought
            if isinstance(exc, KeyboardInterrupt):
                raise
            return "".join(traceback.format_exception(exc))
    return None


# -- the search ----------------------------------------------------------------------------


def test_every_spec_dir_loads_unmutated() -> None:
    for name, files in CORPUS.items():
        with (
            tempfile.TemporaryDirectory() as tmp,
            mock.patch.object(socket, "getaddrinfo", _fake_getaddrinfo),
        ):
            Lab.load(write(files, Path(tmp) / name), name="fuzz", accel="tcg")


@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=not LONG_RUN,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_specs())
def test_mutated_specs_load_or_fail_naming_the_file(mutated: Mutated) -> None:
    problem = load_problem(mutated.files, mutated.touched)
    assert problem is None, f"{mutated!r}\n{problem}"


# -- one test per kind of crash the search found ------------------------------------------------


def _rich(tmp_path: Path, *edits: tuple[str, Path_, Any]) -> Path:
    """RICH written with ``edits``: (file, JSON path in it, new value); the path ``()``
    replaces the whole file (``Raw`` bytes for a file that is no JSON)."""
    files = copy.deepcopy(RICH)
    for rel, path, value in edits:
        if not path:
            files[rel] = value
        else:
            _get(files[rel], path[:-1])[path[-1]] = value
    return write(files, tmp_path / "spec")


def _error(spec: Path) -> str:
    """The message loading ``spec`` fails with (a NewtlabError: anything else fails)."""
    with (
        mock.patch.object(socket, "getaddrinfo", _fake_getaddrinfo),
        pytest.raises(NewtlabError) as info,
    ):
        Lab.load(spec, name="fuzz", accel="tcg")
    return str(info.value)


SW = ("platforms", "sw")
TOPOLOGY_LINKS = ("newtlab", "links", "a:Gi1")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("configs/a.cfg", (), Raw(b"{{ 1/0 }}")),
         "a.cfg: (template): evaluating it failed: division by zero (ZeroDivisionError)"),
        (("configs/a.cfg", (), Raw(b"{{ hostname + 1 }}")), "a.cfg: (template): evaluating"),
        (("configs/b.cfg", (), Raw(b"{% include 'base.cfg' %}")),
         "b.cfg: (template): no template 'base.cfg' to include in "),
        (("patches/fuzzdp/always/port.tmpl", (),
          Raw(b"{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}")),
         "10-base.json: files[0]: boot patch 10-base.json: template port.tmpl: it nests or "
         "calls itself too deeply"),
        (("platforms.json", (*SW, "vm_console", "login", 0, "send"), "{{ ssh_user + 1 }}"),
         "platforms.sw.vm_console.login[0].send: evaluating it failed"),
        (("profiles/a.json", ("vm_post_boot",), ["{{ (1, 2)|join(3)|int / 0 }}"]),
         "a.json: vm_post_boot[0]: evaluating it failed: division by zero"),
    ],
)  # fmt: skip
def test_a_template_that_fails_to_evaluate_is_a_spec_error(
    tmp_path: Path, edit: tuple[str, Path_, Any], expected: str
) -> None:
    """Before: ZeroDivisionError, TypeError ("no loader for this environment"),
    RecursionError — whatever evaluating the user's template raised."""
    assert expected in _error(_rich(tmp_path, edit))


def test_a_base_that_is_no_name(tmp_path: Path) -> None:
    """Before: TypeError: unhashable type: 'list' (catalog lookup)."""
    message = _error(_rich(tmp_path, ("platforms.json", (*SW, "base"), ["linux"])))
    assert "platforms.json: platforms.sw.base: Input should be a valid string" in message


def test_a_number_too_long_to_read(tmp_path: Path) -> None:
    """Before: ValueError: Exceeds the limit (4300 digits) for integer string conversion."""
    spec = _rich(tmp_path, ("profiles/a.json", (), Raw(b'{"vm_memory": 1' + b"0" * 5000 + b"}")))
    assert "a.json: invalid JSON: Exceeds the limit (4300 digits)" in _error(spec)


def test_a_lone_surrogate_escape(tmp_path: Path) -> None:
    """Before: the lab planned, but its plan could not be written (deploy stores it):
    PydanticSerializationError: ... surrogates not allowed. (A NUL, ``\\u0000``, is
    refused alike: no file name, argv or environment can carry one.)"""
    profile = Raw(b'{"platform": "rtr", "vm_image": "/images/b\\u0000.qcow2"}')
    message = _error(_rich(tmp_path / "0", ("profiles/b.json", (), profile)))
    assert "b.json: vm_image: holds a NUL character" in message
    profile = Raw(b'{"platform": "rtr", "\\udc80": 1}')
    message = _error(_rich(tmp_path / "1", ("profiles/b.json", (), profile)))
    assert "b.json: (top level): the key '\\udc80' holds an unpaired UTF-16" in message
    spec = _rich(
        tmp_path, ("profiles/b.json", (), Raw(b'{"platform": "rtr", "ssh_user": "\\ud800"}'))
    )
    assert "b.json: ssh_user: holds an unpaired UTF-16 surrogate escape" in _error(spec)
    patch = Raw(b'{"pre_commands": ["echo \\udfff"]}')
    spec = _rich(tmp_path / "2", ("patches/fuzzdp/r1/20-release.json", (), patch))
    assert "20-release.json: (file): boot patch 20-release.json: pre_commands[0]: holds an" in (
        _error(spec)
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("platforms.json", (*SW, "vm_readiness", 0, "console"), "(" * 600 + ")" * 600),
         "platforms.sw.vm_readiness[0]: '((((("),
        (("platforms.json", (*SW, "vm_readiness", 1, "match"), "a{99999999999}"),
         "'a{99999999999}' is too deeply nested or repeats too often"),
        (("platforms.json", ("platforms", "rtr", "vm_startup_config", "prompt"), "x{4294967296}"),
         "platforms.rtr.vm_startup_config: 'x{4294967296}' is too deeply nested"),
        (("platforms.json", (*SW, "vm_console", "fail", 0), "(" * 600 + ")" * 600),
         "platforms.sw.vm_console.fail[0]: '(((("),
        (("platforms.json", (*SW, "vm_console", "login", 2, "expect"), "#{99999999999}"),
         "platforms.sw.vm_console.login[2].expect: '#{99999999999}' is too deeply nested"),
    ],
)  # fmt: skip
def test_a_regex_python_cannot_compile_at_all(
    tmp_path: Path, edit: tuple[str, Path_, Any], expected: str
) -> None:
    """Before: RecursionError (nesting) or OverflowError (a repeat count), which re raises
    besides re.error."""
    assert expected in _error(_rich(tmp_path, edit))


def test_an_impairment_too_large_for_a_number(tmp_path: Path) -> None:
    """Before: a rate: OverflowError (int of infinity); a delay: planned as infinity,
    which the plan's JSON writes as null and cannot read back."""
    spec = _rich(tmp_path, ("topology.json", (*TOPOLOGY_LINKS, "rate"), "1" * 400 + "mbit"))
    assert "topology.json: newtlab.links.a:Gi1.rate: '11111" in _error(spec)
    assert "is too large a rate" in _error(spec)
    spec = _rich(tmp_path / "2", ("topology.json", (*TOPOLOGY_LINKS, "delay"), "9" * 400 + "ms"))
    assert "newtlab.links.a:Gi1.delay: '99999" in _error(spec)


def test_a_timeout_of_infinity(tmp_path: Path) -> None:
    """Before: planned, but the plan's JSON wrote the timeout as null: the stored plan no
    longer read back (``1e999`` is how JSON writes a number too large for a float)."""
    platforms = _serialize(RICH["platforms.json"]).replace(b'"timeout": 60', b'"timeout": 1e999')
    message = _error(_rich(tmp_path, ("platforms.json", (), Raw(platforms))))
    step = "platforms.sw.vm_console.login[0] (user).timeout"  # a step is named by its name
    assert f"{step}: Input should be a finite number" in message
    assert "platforms.sw.vm_startup_config.timeout: Input should be a finite number" in message


def test_a_port_speed_with_thousands_of_digits(tmp_path: Path) -> None:
    """Before: ValueError: Exceeds the limit (4300 digits) (boot patch variables)."""
    spec = _rich(tmp_path, ("platforms.json", (*SW, "default_speed"), "1" * 5000 + "G"))
    with mock.patch.object(socket, "getaddrinfo", _fake_getaddrinfo):
        plan = Lab.load(spec, name="fuzz", accel="tcg").plan
    assert plan.node("a").patches[0].post_commands == ["echo 0"]  # as for any speed not read


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ([("platforms.json", (*SW, "vm_interface_map_custom", "Gi1"), 10**12),
          ("platforms.json", (*SW, "vm_nic_mac"), "per-nic")],
         "cannot place a:Gi1 on a NIC: it would be NIC 1000000000000, and a VM has 869 NICs"),
        ([("topology.json", ("devices", "b"), {}),
          ("topology.json", ("links", 0, "z"), "b:Ethernet99999999999")],
         "cannot place b:Ethernet99999999999 on a NIC: it would be NIC 100000000000"),
        ([("topology.json", ("devices", "h2", "interfaces"),
           {"eth0": {}, "eth1": {}, "eth99999999999": {}}),
          ("topology.json", ("links", 2, "z"), "h2:eth99999999999")],
         "host interface h2:eth99999999999 would be NIC 100000000001 of hostvm-0"),
    ],
)  # fmt: skip
def test_an_interface_numbered_beyond_any_pci_bus(
    tmp_path: Path, edits: list[tuple[str, Path_, Any]], expected: str
) -> None:
    """Before: the plan made a MAC for every NIC up to the interface's number (one per
    NIC where MACs are per-NIC) — a hang, then all the memory there is — before the PCI
    layout refused that many."""
    with _time_limit(10):
        message = _error(_rich(tmp_path, *edits))
    assert expected in message and "NICs at most" in message


@pytest.mark.parametrize(
    "end", ["b:Ethernet" + "9" * 5000, "b:two words", "b:" + "x" * 65, "b:$(reboot)"]
)
def test_an_interface_name_in_the_links_list_is_checked(tmp_path: Path, end: str) -> None:
    """Before: the names of a device's interfaces were checked, not those the links list
    gives a device that declares none: a 5000-digit number was a ValueError (int()),
    and a name the interface map refused was reported as the map's problem."""
    topology = copy.deepcopy(RICH["topology.json"])
    topology["devices"]["b"] = {}
    topology["links"][0]["z"] = end
    message = _error(_rich(tmp_path, ("topology.json", (), topology)))
    assert "topology.json: links[0].z: interface name" in message and "is not allowed" in message


def test_a_virtual_hosts_peer_address_that_is_no_address(tmp_path: Path) -> None:
    """Before: ValueError: 'ten' does not appear to be an IPv4 or IPv6 interface (with
    host_ip set, the peer's address was read unchecked to find the gateway)."""
    gi2 = ("devices", "a", "interfaces", "Gi2", "ip")
    message = _error(_rich(tmp_path, ("topology.json", gi2, "ten")))
    assert "topology.json: devices.a.interfaces.Gi2.ip: 'ten' is not an address with a prefix" in (
        message
    )


@pytest.mark.parametrize(
    "address", ["a" * 64 + ".example", "lab..example", "-oProxyCommand=x", "", "two words"]
)
def test_a_server_address_that_is_no_address(tmp_path: Path, address: str) -> None:
    """Before: UnicodeError from the resolver's IDNA step ("label too long", "label
    empty"); an address starting with "-" would have reached ssh's command line."""
    server = ("newtlab", "servers", 1, "address")
    message = _error(_rich(tmp_path, ("topology.json", server, address)))
    assert "topology.json: newtlab.servers[1] (s2).address: server address" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("dataplane", "9" * 300), ("dataplane", "../../etc"), ("vm_image_release", "a/b")],
)
def test_a_patch_directory_name_that_is_no_name(tmp_path: Path, field: str, value: str) -> None:
    """Before: OSError: [Errno 36] File name too long (looking for patches/<dataplane>/);
    "../" looked for patches outside the patches directories."""
    message = _error(_rich(tmp_path, ("platforms.json", (*SW, field), value)))
    assert f"platforms.json: platforms.sw.{field}: {value[:20]}" in message.replace("'", "")


# -- messages the search found naming no file the mutation touched ---------------------------


def test_a_pin_to_an_unknown_server_names_the_profile(tmp_path: Path) -> None:
    message = _error(_rich(tmp_path, ("profiles/h2.json", ("vm_host",), "s9")))
    assert "h2.json: vm_host: h2 is pinned to unknown server 's9'" in message


def test_a_template_file_of_a_patch_is_named(tmp_path: Path) -> None:
    spec = _rich(tmp_path, ("patches/fuzzdp/always/redis.tmpl", (), Raw(b"\xff")))
    assert "redis[0]: boot patch 10-base.json: template redis.tmpl: 'utf-8' codec" in (_error(spec))


def test_an_interface_the_map_cannot_place_names_where_the_map_comes_from(
    tmp_path: Path,
) -> None:
    message = _error(_rich(tmp_path, ("profiles/h2.json", ("platform",), "sw")))
    assert "cannot place h2:eth1 on a NIC" in message
    assert "platform 'sw' (profiles/h2.json) uses the 'custom' interface map of platforms.json" in (
        message
    )


def test_a_device_without_profile_names_topology(tmp_path: Path) -> None:
    devices = ("devices",)
    topology = copy.deepcopy(RICH["topology.json"])
    topology["devices"]["d"] = {}
    message = _error(_rich(tmp_path, ("topology.json", (), topology)))
    assert "or remove the device from topology.json" in message
    assert devices  # the device is named: profiles/d.json


def test_a_config_file_the_platform_cannot_take_names_where_the_platform_comes_from(
    tmp_path: Path,
) -> None:
    message = _error(
        _rich(
            tmp_path,
            ("profiles/b.json", ("platform",), "cloud2"),
            (
                "platforms.json",
                ("platforms", "cloud2"),
                {"vm_image": "/c.qcow2", "vm_interface_map": "sequential"},
            ),
        )
    )
    assert "b.cfg: platform 'cloud2' takes no startup configuration" in message
    assert "choose another platform (profiles/b.json)" in message


def test_a_config_file_of_a_virtual_host_names_where_it_became_one(tmp_path: Path) -> None:
    message = _error(_rich(tmp_path, ("configs/h1.cfg", (), Raw(b"x\n"))))
    assert "h1.cfg: 'h1' is a virtual host: it has no VM to configure" in message
    assert (
        "platform 'vhost', from profiles/h1.json, has device_type \"host\" in platforms.json"
        in (message)
    )


def test_too_many_pins_to_a_server_name_the_profiles(tmp_path: Path) -> None:
    message = _error(
        _rich(
            tmp_path,
            ("profiles/b.json", ("vm_host",), "s2"),
            ("topology.json", ("newtlab", "servers", 1, "max_nodes"), 1),
        )
    )
    assert "server s2 runs 1 VMs at most (max_nodes) but 2 are pinned to it" in message
    assert "profiles/b.json, profiles/h1.json, profiles/h2.json" in message


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        ([{"name": "local", "address": "10.9.0.1"}], "server name 'local' is reserved"),
        ([{"name": "s1", "address": "10.9.0.1"}, {"name": "s1", "address": "10.9.0.2"}],
         "two servers are named 's1'"),
    ],
)  # fmt: skip
def test_server_names_that_would_confuse_the_plan(
    tmp_path: Path, servers: list[dict[str, str]], expected: str
) -> None:
    """``local`` is the plan's name for this machine; two servers of one name were one."""
    message = _error(_rich(tmp_path, ("topology.json", ("newtlab", "servers"), servers)))
    assert "topology.json: newtlab.servers" in message and expected in message
