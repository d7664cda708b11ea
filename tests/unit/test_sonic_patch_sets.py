"""The shipped SONiC sets (sonic-vs, ciscovs): what newtron's spec dirs plan, the release check
a file-editing patch runs first, and the frrcfgd edits run here on the test imitation's files
(tests/integration/sonic_imitation), as newtlab renders them for a node."""

from __future__ import annotations

import json
import os
import py_compile
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from newtlab.errors import SpecErrors
from newtlab.lab import Lab
from newtlab.plan import patches
from newtlab.plan.model import PatchPlan
from newtlab.plan.patches import SONIC_VERSION_FILE, release_check
from newtlab.render import print_plan

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "tests" / "fixtures" / "specs"
BGP = ROOT / "tests/integration/sonic_imitation/root/usr/lib/sonic-imitation/bgp"
FRRCFGD = BGP / "lib/python3.11/dist-packages/frrcfgd/frrcfgd.py"
TEMPLATE = BGP / "sonic/frrcfgd/bgpd.conf.db.j2"


def _patches(spec: str, node: str) -> list[PatchPlan]:
    return Lab.load(SPECS / spec / "specs").plan.node(node).patches


def test_newtrons_spec_dirs_plan_the_sets_in_newtrons_order() -> None:
    assert [p.source for p in _patches("1node-vs", "switch1")] == [
        "built-in:sonic-vs/always/00-frrcfgd-mode.json",
        "built-in:sonic-vs/always/01-clean-factory-config.json",
        "built-in:sonic-vs/always/02-frrcfgd-ebgp-policy.json",
        "built-in:sonic-vs/always/03-wait-swss.json",
    ]
    ciscovs = _patches("2node-ngdp", "switch1")
    assert [p.source for p in ciscovs] == [
        "built-in:ciscovs/always/00-frrcfgd-mode.json",
        "built-in:ciscovs/always/01-frrcfgd-vni-bootstrap.json",
        "built-in:ciscovs/always/02-wait-swss.json",
    ]
    # Only the patches that edit a file in a container are held to the releases they know.
    assert [p.sonic_releases for p in ciscovs] == [[], ["202505"], []]


def test_plan_shows_each_patch_with_its_description_once() -> None:
    console = Console(record=True, width=100)
    print_plan(console, Lab.load(SPECS / "2node-ngdp" / "specs").plan)
    text = console.export_text()
    heading = (
        "── boot patch built-in:ciscovs/always/01-frrcfgd-vni-bootstrap.json (switch1, switch2) ──"
    )
    assert text.count(heading) == 1
    after = text.split(heading)[1]
    assert after.lstrip().startswith("Cisco VS (SONiC): frrcfgd's vrf_handler does not act")
    assert "Runs on SONiC 202505 only." in after.split("── boot patch")[0]


def _check(
    tmp_path: Path, releases: list[str], version: str | None
) -> subprocess.CompletedProcess[str]:
    patch = PatchPlan(name="02-x.json", source="built-in:sonic-vs/always/02-x.json",
                      sonic_releases=releases)  # fmt: skip
    step = release_check(patch)
    assert step is not None and step.kind == "sonic_releases"
    yml = tmp_path / f"{len(list(tmp_path.iterdir()))}.yml"  # a new file each time
    if version is not None:
        yml.write_text(f"build_version: {version}\nasic_type: vs\n")
    command = step.command.replace(SONIC_VERSION_FILE, str(yml))
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "version", ["'202505.1057313-e5d9bf0b6'", '"20250510.04"', "202505.0-dirty-20250901.1-ab12"]
)
def test_a_known_release_passes_the_check(tmp_path: Path, version: str) -> None:
    assert _check(tmp_path, ["202505"], version).returncode == 0
    assert _check(tmp_path, ["master", "202505"], version).returncode == 0


def test_another_release_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    refused = _check(tmp_path, ["202505", "master"], "'202411.12-abc'")
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == [
        "this image is SONiC 202411 (build_version 202411.12-abc)",
        "02-x.json was written for SONiC 202505, master only, so no boot patch was applied: "
        "check it against this release, then add the release to its sonic_releases in a copy "
        "in your spec dir's patches/sonic-vs/always/ (copy "
        f"{Path(patches.__file__).parents[1] / 'patches/sonic-vs/always/02-x.json'} and the "
        "files it names)",
    ]
    unknown = _check(tmp_path, ["202505"], None)
    assert unknown.returncode == 1
    assert unknown.stdout.startswith("cannot tell the image's SONiC release: no build_version in")
    assert release_check(PatchPlan(name="p", source="s")) is None


def test_a_release_name_is_a_plain_word(tmp_path: Path) -> None:
    spec = tmp_path / "lab"
    for name in ("topology.json", "platforms.json"):
        (spec / "profiles").mkdir(parents=True, exist_ok=True)
        (spec / name).write_text((SPECS / "1node-vs" / "specs" / name).read_text())
    (spec / "profiles" / "switch1.json").write_text(
        (SPECS / "1node-vs" / "specs" / "profiles" / "switch1.json").read_text()
    )
    own = spec / "patches" / "sonic-vs" / "always" / "05-own.json"
    own.parent.mkdir(parents=True)
    own.write_text(json.dumps({"sonic_releases": ["2025*"]}))
    with pytest.raises(SpecErrors, match=r"05-own\.json: \(file\): .*sonic_releases\.0"):
        Lab.load(spec)


@dataclass(frozen=True)
class Editor:
    """frrcfgd_edits.py as newtlab renders it for a sonic-vs node, run here with a
    supervisorctl on PATH that logs its arguments to ``log``."""

    script: Path
    bin_dir: Path
    log: Path

    def __call__(self, name: str, path: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PATH": f"{self.bin_dir}:{os.environ['PATH']}"}
        argv = [sys.executable, str(self.script), name, str(path)]
        return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


@pytest.fixture
def edit(tmp_path: Path) -> Editor:
    (ebgp,) = [p for p in _patches("1node-vs", "switch1") if p.sonic_releases]
    script, bin_dir, log = tmp_path / "frrcfgd_edits.py", tmp_path / "bin", tmp_path / "log"
    script.write_text(ebgp.files[0].content)
    bin_dir.mkdir()
    (bin_dir / "supervisorctl").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    (bin_dir / "supervisorctl").chmod(0o755)
    return Editor(script, bin_dir, log)


def test_the_vrf_vni_edit_goes_in_once_and_restarts_frrcfgd_once(
    tmp_path: Path, edit: Editor
) -> None:
    package = tmp_path / "frrcfgd"
    (package / "__pycache__").mkdir(parents=True)
    target = package / "frrcfgd.py"
    target.write_text(FRRCFGD.read_text())
    target.chmod(0o644)
    stale = package / "__pycache__" / "frrcfgd.cpython-311.pyc"
    stale.write_bytes(b"old")

    first = edit("vrf-vni", target)
    assert first.returncode == 0 and first.stdout == f"{target}: vrf-vni added\n", first.stderr
    edited = target.read_text()
    assert edited.count("# newtlab: vrf-vni sync") == 1
    start = edited.index("    def start(self):\n        self.subscribe_all()\n")
    assert edited.index("# newtlab: vrf-vni sync") > start
    assert edited.index("# newtlab: vrf-vni sync") < edited.index("self.config_db.listen()")
    py_compile.compile(str(target), cfile=str(tmp_path / "check.pyc"), doraise=True)
    assert (target.stat().st_mode & 0o777) == 0o644 and not stale.exists()
    assert edit.log.read_text() == "restart frrcfgd\n"

    again = edit("vrf-vni", target)
    assert again.returncode == 0 and again.stdout == f"{target}: vrf-vni already there\n"
    assert target.read_text() == edited and edit.log.read_text() == "restart frrcfgd\n"


def test_an_edit_refuses_a_file_it_was_not_written_for(tmp_path: Path, edit: Editor) -> None:
    other = tmp_path / "frrcfgd.py"
    text = FRRCFGD.read_text().replace(
        "        self.subscribe_all()\n", "        self.subscribe()\n"
    )
    other.write_text(text)
    refused = edit("vrf-vni", other)
    assert refused.returncode == 1 and other.read_text() == text and not edit.log.exists()
    assert "appears 0 times, not once: this is not the file of SONiC 202505" in refused.stderr
    doubled = tmp_path / "bgpd.conf.db.j2"
    doubled.write_text(TEMPLATE.read_text() * 2)
    refused = edit("ebgp-requires-policy", doubled)
    assert refused.returncode == 1 and "appears 2 times" in refused.stderr


def test_the_ebgp_edit_changes_the_template_and_restarts_nothing(
    tmp_path: Path, edit: Editor
) -> None:
    target = tmp_path / "bgpd.conf.db.j2"
    target.write_text(TEMPLATE.read_text())
    assert edit("ebgp-requires-policy", target).returncode == 0
    assert edit("ebgp-requires-policy", target).stdout.endswith("already there\n")
    edited = target.read_text()
    assert edited.count("{# newtlab: ebgp_requires_policy #}") == 1
    anchor = " no bgp default ipv4-unicast\n{% endif %}\n{# newtlab: ebgp_requires_policy #}\n"
    assert anchor in edited and not edit.log.exists()
