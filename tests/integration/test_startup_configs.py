"""Startup configurations on real VMs: a NoCloud seed, a console push, a config ISO."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from labkit import SpecDir, run_cli, ssh, two_routers

from newtlab.agent import layout
from newtlab.home import lab_dir
from newtlab.iso import read_iso

pytestmark = pytest.mark.integration

USER_DATA = """#!/bin/sh
# {{ hostname }}: its interfaces, from topology.json
echo "{{ hostname }} {{ interfaces | map(attribute='name') | join(',') }}" > /tmp/user-data-ran
"""
PUSHED = "echo first > pushed.txt\n\necho {{ hostname }} {{ mgmt_address }} >> pushed.txt\n"
ISO_CONFIG = "hostname {{ hostname }}\nports {{ port_names | join(' ') }}\n"


def _configure(spec: SpecDir) -> None:
    platforms_path = spec.path / "platforms.json"
    platforms = json.loads(platforms_path.read_text())["platforms"]
    # r1: the image's own NoCloud method; no key from the console, so only the seed gives it.
    platforms["seeded"] = {"base": "newtlab-host", "vm_console": {
        **platforms_of_catalog()["vm_console"], "install_key": []}}  # fmt: skip
    platforms["pushed"] = {"base": "newtlab-host", "vm_startup_config": {
        "method": "console", "prompt": r"# ?", "before": ["cd /tmp"], "after": ["sync"],
        "fail": ["not found"]}}  # fmt: skip
    platforms["iso"] = {"base": "newtlab-host", "vm_startup_config": {
        "method": "iso", "file": "config/init-cfg.txt", "label": "bootstrap"}}  # fmt: skip
    platforms_path.write_text(json.dumps({"platforms": platforms}))
    for node, platform in (("r1", "seeded"), ("r2", "pushed"), ("r3", "iso")):
        (spec.path / "profiles" / f"{node}.json").write_text(json.dumps({"platform": platform}))
    configs = spec.path / "configs"
    configs.mkdir()
    (configs / "r1.cfg").write_text(USER_DATA)
    (configs / "r2.cfg").write_text(PUSHED)
    (configs / "r3.cfg").write_text(ISO_CONFIG)


def platforms_of_catalog() -> dict[str, object]:
    from newtlab.spec.catalog import catalog

    return catalog()["newtlab-host"]


def test_nocloud_seed_console_push_and_config_iso(make_lab) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab()
    _configure(spec)
    planned = run_cli("plan", "-S", str(spec.path), "--no-probe")
    assert planned.returncode == 0, planned.stderr
    for shown in ("NoCloud seed", "typed on the console", "ISO 'bootstrap' (cdrom) as",
                  "echo r2 10.0.2.15/24 >> pushed.txt", "ports eth1"):  # fmt: skip
        assert shown in planned.stdout, planned.stdout

    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert result.returncode == 0, result.stderr

    # NoCloud: the hostname written, the lab's key installed (by the seed alone), user-data run.
    assert ssh("r1", "cat /etc/hostname").strip() == "r1"
    key = Path(lab_dir(spec.lab) / (layout.SSH_KEY + ".pub")).read_text().split()[1]
    assert ssh("r1", "grep -c " + key + " /root/.ssh/authorized_keys").strip() == "1"
    assert ssh("r1", "cat /tmp/user-data-ran").strip() == "r1 eth1"

    # Console: every line typed in order, in the directory `before` chose, blank lines skipped.
    assert ssh("r2", "cat /tmp/pushed.txt").splitlines() == ["first", "r2 10.0.2.15/24"]

    # ISO: the file under its own name and the label, as the guest reads the CD...
    seen = ssh("r3", "mkdir -p /mnt/cd && mount -t iso9660 -o ro /dev/sr0 /mnt/cd && "
                     "cat /mnt/cd/config/init-cfg.txt && blkid /dev/sr0")  # fmt: skip
    assert seen.splitlines()[:2] == ["hostname r3", "ports eth1"]
    assert 'LABEL="bootstrap"' in seen
    # ... and as pycdlib reads the image newtlab wrote.
    image = (lab_dir(spec.lab) / layout.config_iso("r3")).read_bytes()
    assert read_iso(image) == ("bootstrap", {"config/init-cfg.txt": b"hostname r3\nports eth1\n"})


def test_a_refused_config_line_fails_its_node(make_lab) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab(edit=two_routers)  # r2 pushed from the console, r1 seeded
    _configure(spec)
    (spec.path / "configs" / "r3.cfg").unlink()  # no r3
    (spec.path / "configs" / "r2.cfg").write_text("echo fine\nno-such-command --really\n")
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert result.returncode == 1
    assert "r2: the startup config's line 3 `no-such-command --really` was refused" in result.stderr
    assert "r1" not in result.stderr.split("deploy failed:")[1]  # the others deployed
