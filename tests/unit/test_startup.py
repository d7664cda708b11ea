"""Startup configurations and catalog bases in the plan, and the QEMU arguments they make."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pycdlib
import pytest

from newtlab.errors import SpecErrors
from newtlab.iso import build_iso, read_iso
from newtlab.lab import Lab
from newtlab.ops.startup_config import config_push, iso_image
from newtlab.plan.model import NodePlan
from newtlab.spec.catalog import catalog
from specfactory import HOST_PLATFORM, SWITCH_PLATFORM, linked, write_specs

ISO = {"method": "iso", "file": "config/init-cfg.txt", "label": "bootstrap",
       "directories": ["content", "license"]}  # fmt: skip
CONSOLE = {"method": "console", "prompt": r"\(config\)#", "before": ["configure terminal"],
           "after": ["end"], "fail": ["% Invalid"]}  # fmt: skip


def _lab(tmp_path: Path, configs: dict[str, str], **platform: Any) -> Path:
    devices = {**linked(("a:Ethernet0", "b:Ethernet0")), "h": {"interfaces": {}}}
    devices["a"]["interfaces"]["Ethernet0"]["ip"] = "10.1.0.0/31"
    spec = write_specs(
        tmp_path / "lab",
        devices,
        platforms={"sw": {**SWITCH_PLATFORM, **platform}, "host": HOST_PLATFORM},
        profiles={"h": {"platform": "host"}},
    )
    (spec / "configs").mkdir()
    for device, text in configs.items():
        (spec / "configs" / f"{device}.cfg").write_text(text)
    return spec


def _node(spec: Path, name: str = "a") -> NodePlan:
    return Lab.load(spec).plan.node(name)


def test_an_iso_config_is_rendered_and_attached_as_a_cdrom(tmp_path: Path) -> None:
    text = "hostname {{ hostname }}\n{% for i in interfaces %}{{ i.name }} {{ i.ip }}\n{% endfor %}"
    node = _node(_lab(tmp_path, {"a": text + "mgmt {{ mgmt_address }}\n"}, vm_startup_config=ISO))
    config = node.startup_config
    assert config is not None and config.method == "iso"
    assert config.content == "hostname a\nEthernet0 10.1.0.0/31\nmgmt 10.0.2.15/24\n"
    assert config.files == {"config/init-cfg.txt": config.content}
    drive = f"file={config.iso},if=ide,index=2,media=cdrom,format=raw"
    assert node.qemu_argv[-2:] == ["-drive", drive]
    label, files = read_iso(iso_image(config, "ssh-ed25519 KEY"))
    assert label == "bootstrap" and files == {"config/init-cfg.txt": config.content.encode()}
    b = _node(_lab(tmp_path / "2", {}, vm_startup_config=ISO), "b")
    assert b.startup_config is None  # no file, no ISO
    assert not any("media=cdrom" in arg for arg in b.qemu_argv)


def test_a_config_knows_its_peers_and_profile_and_includes_its_roles(tmp_path: Path) -> None:
    """The variables examples/clos's role templates use: the far end's address, the
    profile's own fields, a shared template of configs/, the `network` filter."""
    spec = _lab(tmp_path, {"b": '{% include "role.j2" %}'}, vm_startup_config=ISO)
    (spec / "configs" / "role.j2").write_text(
        "asn {{ profile.underlay_asn }}\n{% for i in interfaces %}{{ i.name }} {{ i.address }} "
        "{{ i.peer_node }} {{ i.peer or '-' }} {{ i.ip | network if i.ip else '' }}\n{% endfor %}"
    )
    (spec / "profiles" / "b.json").write_text('{"platform": "sw", "underlay_asn": 65002}')
    config = _node(spec, "b").startup_config
    assert config is not None
    # b's Ethernet0 has no address of its own; its peer a's is 10.1.0.0.
    assert config.content == "asn 65002\nEthernet0  a 10.1.0.0 \n"
    config = _node(spec, "a").startup_config
    assert config is None  # a has no file: role.j2 is not a device's config
    text = "{{ interfaces[0].ip | network }} {{ interfaces[0].peer }}"
    spec_a = _lab(tmp_path / "2", {"a": text}, vm_startup_config=ISO)
    config = _node(spec_a).startup_config
    assert config is not None and config.content == "10.1.0.0/31 "  # b gives no address
    missing = _lab(tmp_path / "3", {"a": '{% include "nowhere.j2" %}'}, vm_startup_config=ISO)
    with pytest.raises(SpecErrors, match=r"a\.cfg: \(template\): no template 'nowhere\.j2'"):
        Lab.load(missing)


def test_a_usb_stick_and_empty_directories(tmp_path: Path) -> None:
    node = _node(_lab(tmp_path, {"a": "x\n"}, vm_startup_config={**ISO, "drive": "usb"}))
    assert node.startup_config is not None
    stick = f"if=none,id=config,file={node.startup_config.iso},format=raw,readonly=on"
    assert node.qemu_argv[-5:] == ["-usb", "-drive", stick, "-device", "usb-storage,drive=config"]
    image = iso_image(node.startup_config, "")
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    found = sorted(path for path, _, _ in iso.walk(rr_path="/"))
    iso.close()
    assert found == ["/", "/config", "/content", "/license"]


def test_a_nocloud_seed_has_the_hostname_and_at_deploy_the_key(tmp_path: Path) -> None:
    nocloud = {"method": "nocloud"}
    node = _node(
        _lab(tmp_path, {"a": "#!/bin/sh\necho {{ hostname }}\n"}, vm_startup_config=nocloud)
    )
    config = node.startup_config
    assert config is not None and config.label == "cidata"
    assert config.files["user-data"] == "#!/bin/sh\necho a\n"
    label, files = read_iso(iso_image(config, "ssh-ed25519 AAAA lab"))
    assert label == "cidata"
    assert files["meta-data"].decode().splitlines() == [
        f"instance-id: {Lab.load(tmp_path / 'lab').plan.lab}-a", "local-hostname: a",
        "public-keys:", "  - ssh-ed25519 AAAA lab",
    ]  # fmt: skip
    # Without a file a NoCloud platform still gets a seed: a cloud image needs its key.
    b = _node(tmp_path / "lab", "b").startup_config
    assert b is not None and b.source == "" and b.files["user-data"] == "#cloud-config\n"


def test_a_console_push_types_before_lines_and_after(tmp_path: Path) -> None:
    node = _node(
        _lab(tmp_path, {"a": "interface Gi1\n\n no shutdown  \n"}, vm_startup_config=CONSOLE)
    )
    push = config_push(node.startup_config)
    assert push is not None
    assert list(push.lines) == ["configure terminal", "interface Gi1", " no shutdown", "end"]
    assert push.prompt == r"\(config\)#" and list(push.fail) == ["% Invalid"]
    assert not node.startup_config or not node.startup_config.iso


@pytest.mark.parametrize(
    ("configs", "platform", "problem"),
    [
        ({"zz": "x"}, {}, "configs/zz.cfg: no device 'zz' in topology.json"),
        ({"h": "x"}, {}, "configs/h.cfg: 'h' is a virtual host"),
        ({"a": "x"}, {}, "configs/a.cfg: platform 'sw' takes no startup configuration"),
        ({"a": "{{ nope }}"}, {"vm_startup_config": ISO}, "configs/a.cfg: (template): 'nope'"),
        (
            {"a": "x"},
            {
                "vm_startup_config": CONSOLE,
                "vm_console": {
                    "login": [],
                    "bootstrap": [],
                    "create_user": [],
                    "install_key": [],
                    "set_password": [],
                },
            },
            "pushes configs on the console but has no console login",
        ),
        ({}, {"vm_startup_config": {"method": "iso", "file": "x"}}, 'needs "file"'),
        ({}, {"vm_startup_config": {"method": "console"}}, 'needs "prompt"'),
        (
            {},
            {"vm_max_nics": 1},
            "a needs 2 NICs (management included) but its platform supports 1",
        ),
        ({}, {"base": "nope"}, "base 'nope' is not in newtlab's catalog"),
        ({}, {"vm_disk_driver": "sata2"}, "vm_disk_driver"),
    ],
)
def test_startup_and_platform_mistakes_are_spec_errors(
    tmp_path: Path, configs: dict[str, str], platform: dict[str, Any], problem: str
) -> None:
    with pytest.raises(SpecErrors) as error:
        _node(_lab(tmp_path, configs, **platform))
    assert problem in str(error.value)


def test_a_base_gives_every_field_the_entry_does_not_replace(tmp_path: Path) -> None:
    host = catalog()["newtlab-host"]
    platform = {"base": "newtlab-host", "vm_memory": 256, "vm_nic_driver": "e1000"}
    spec = write_specs(tmp_path, linked(("a:eth1", "b:eth1")), platforms={"sw": platform})
    node = _node(spec)
    assert (node.memory, node.nic_driver, node.cpus) == (256, "e1000", host["vm_cpus"])
    assert node.console.user == host["vm_credentials"]["user"]
    assert node.startup_config is not None and node.startup_config.method == "nocloud"


def test_firmware_smbios_and_a_sata_disk(tmp_path: Path) -> None:
    node = _node(_lab(tmp_path, {}, vm_firmware="uefi", vm_smbios=["type=1,product=X"],
                      vm_disk_driver="sata"))  # fmt: skip
    argv = node.qemu_argv
    assert argv[argv.index("-bios") + 1] == "/usr/share/ovmf/OVMF.fd"
    assert argv[argv.index("-smbios") + 1] == "type=1,product=X"
    assert argv[argv.index("ahci,id=disks") - 1] == "-device"
    assert "ide-hd,drive=disk0,bus=disks.0" in argv


def test_iso_names_survive_in_rock_ridge_and_joliet() -> None:
    files = {"iosxe_config.txt": b"a", "openstack/latest/user_data": b"b", "meta-data": b"c"}
    assert read_iso(build_iso(files, "config-2")) == ("config-2", files)
