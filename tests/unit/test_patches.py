"""Boot patches: which apply, in which order, rendered with the plan's variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from newtlab.errors import SpecErrors
from newtlab.lab import Lab
from newtlab.plan import patches
from newtlab.plan.model import PatchFilePlan, PatchPlan, PatchRedisPlan
from newtlab.plan.patches import patch_steps, port_speed
from specfactory import linked, write_specs

PLATFORM = {"vm_image": "/i.qcow2", "vm_interface_map": "sequential", "hwsku": "sku-1",
            "default_speed": "100G", "dataplane": "vpp", "vm_image_release": "202405"}  # fmt: skip


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def _spec(tmp_path: Path, **platform: Any) -> Path:
    devices = linked(("a:Ethernet0", "b:Ethernet0"), ("a:Ethernet1", "b:Ethernet1"))
    return write_specs(tmp_path / "lab", devices, platforms={"sw": {**PLATFORM, **platform}})


@pytest.fixture
def builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """newtlab's own patch directory, replaced by one this test writes."""
    root = tmp_path / "builtin"
    root.mkdir()
    monkeypatch.setattr(patches, "_builtin_root", lambda: root)
    return root


def test_resolution_order_release_and_overrides(tmp_path: Path, builtin: Path) -> None:
    _write(builtin / "vpp" / "always" / "20-b.json", {"description": "built-in b"})
    _write(builtin / "vpp" / "always" / "10-a.json", {"description": "built-in a"})
    _write(builtin / "vpp" / "202405" / "05-rel.json", {"description": "built-in release"})
    _write(builtin / "vpp" / "202311" / "05-old.json", {"description": "other release"})
    _write(builtin / "vs" / "always" / "10-a.json", {"description": "another dataplane"})
    spec = _spec(tmp_path)
    _write(spec / "patches" / "vpp" / "always" / "20-b.json", {"description": "spec b"})
    _write(spec / "patches" / "vpp" / "always" / "15-own.json", {"description": "spec own"})
    node = Lab.load(spec).plan.node("a")
    assert [(p.name, p.description) for p in node.patches] == [
        ("10-a.json", "built-in a"),
        ("15-own.json", "spec own"),
        ("20-b.json", "spec b"),  # same name: the spec dir's replaces newtlab's
        ("05-rel.json", "built-in release"),  # always first, then the release's
    ]
    assert node.patches[0].source == "built-in:vpp/always/10-a.json"
    assert node.patches[2].source == str(spec / "patches" / "vpp" / "always" / "20-b.json")


def test_the_key_is_the_platform_name_without_a_dataplane(tmp_path: Path, builtin: Path) -> None:
    spec = _spec(tmp_path, dataplane="", vm_image_release="")
    _write(spec / "patches" / "sw" / "always" / "10.json", {"description": "by name"})
    _write(spec / "patches" / "sw" / "202405" / "10.json", {"description": "no release set"})
    assert [p.description for p in Lab.load(spec).plan.node("a").patches] == ["by name"]


def test_templates_see_the_plan_variables(tmp_path: Path, builtin: Path) -> None:
    spec = _spec(tmp_path)
    template = (
        "{% for a in pci_addrs %}Ethernet{{ loop.index0 * 4 }} {{ a }} {{ port_speed }}\n"
        "{% endfor %}{{ num_ports }} {{ platform }} {{ dataplane }} {{ release }} {{ node }}\n"
    )
    _write(spec / "patches" / "vpp" / "always" / "port.tmpl", template)
    _write(
        spec / "patches" / "vpp" / "always" / "entries.tmpl", "HSET PORT|x speed {{ port_speed }}\n"
    )
    _write(spec / "patches" / "vpp" / "always" / "10.json", {
        "files": [{"template": "port.tmpl", "dest": "{{ hwsku_dir }}/port_config.ini"}],
        "redis": [{"db": 4, "template": "entries.tmpl"}],
        "pre_commands": ["echo {{ node | shquote }}"],
    })  # fmt: skip
    node = Lab.load(spec).plan.node("a")
    (patch,) = node.patches
    data = node.nics[1:]
    assert patch.files == [
        PatchFilePlan(
            dest="/usr/share/sonic/device/x86_64-kvm_x86_64-r0/sku-1/port_config.ini",
            content=f"Ethernet0 {data[0].pci} 100000\nEthernet4 {data[1].pci} 100000\n"
            "2 sw vpp 202405 a\n",
        )
    ]
    assert patch.redis == [PatchRedisPlan(db=4, commands="HSET PORT|x speed 100000\n")]
    assert patch.pre_commands == ["echo a"]


def test_patch_problems_name_file_and_field(tmp_path: Path, builtin: Path) -> None:
    spec = _spec(tmp_path)
    always = spec / "patches" / "vpp" / "always"
    _write(always / "10-typo.json", {"pre_comands": ["true"]})
    _write(always / "20-undefined.json", {"post_commands": ["echo {{ nope }}"]})
    _write(always / "30-missing.json", {"files": [{"template": "gone.tmpl", "dest": "/x"}]})
    _write(always / "40-bad.json", "{not json")
    with pytest.raises(SpecErrors) as caught:
        Lab.load(spec)
    found = {(Path(e.file).name, e.path) for e in caught.value.errors}
    assert found == {("10-typo.json", "(file)"), ("20-undefined.json", "post_commands"),
                     ("30-missing.json", "files[0]"), ("40-bad.json", "(file)")}  # fmt: skip
    assert "'nope' is undefined" in str(caught.value)


def test_post_boot_runs_platform_then_profile_commands(tmp_path: Path, builtin: Path) -> None:
    devices = linked(("a:Ethernet0", "b:Ethernet0"))
    platforms = {"sw": {**PLATFORM, "vm_post_boot": ["echo {{ node }} {{ num_ports }}"]}}
    profiles = {"a": {"platform": "sw", "vm_post_boot": ["echo mine"]}, "b": {"platform": "sw"}}
    plan = Lab.load(
        write_specs(tmp_path / "lab", devices, platforms=platforms, profiles=profiles)
    ).plan
    assert plan.node("a").post_boot == ["echo a 1", "echo mine"]
    assert plan.node("b").post_boot == ["echo b 1"]
    profiles["b"] = {"platform": "sw", "vm_post_boot": ["{{ broken"]}
    with pytest.raises(SpecErrors, match=r"b\.json: vm_post_boot\[0\]"):
        Lab.load(write_specs(tmp_path / "lab2", devices, platforms=platforms, profiles=profiles))


@pytest.mark.parametrize(
    ("text", "mbps"), [("100G", 100000), ("25g", 25000), ("400M", 400), ("10000", 10000), ("", 0)]
)
def test_port_speed(text: str, mbps: int) -> None:
    assert port_speed(text) == mbps


def test_steps_follow_the_lld_order_with_file_changes_as_root() -> None:
    patch = PatchPlan(
        name="p.json", source="x", pre_commands=["pre"], disable_files=["/etc/a b"],
        files=[PatchFilePlan(dest="/etc/d/f.ini", content="x=1\n")],
        redis=[PatchRedisPlan(db=4, commands="HSET k f v\n")], post_commands=["post"],
    )  # fmt: skip
    steps = patch_steps(patch)
    assert [s.kind for s in steps] == [
        "pre_commands", "disable_files", "files", "redis", "post_commands",
    ]  # fmt: skip
    assert steps[0].command == "pre" and steps[-1].command == "post"
    assert "mv -f '\"'\"'/etc/a b'\"'\"'" in steps[1].command and "sudo -n" in steps[1].command
    assert steps[2].stdin == "x=1\n" and "cat > /etc/d/f.ini" in steps[2].command
    assert steps[3].stdin == "HSET k f v\n" and "redis-cli -n 4" in steps[3].command


def test_commands_that_render_to_nothing_are_left_out(tmp_path: Path, builtin: Path) -> None:
    spec = _spec(tmp_path, vm_post_boot=["{% if node == 'b' %}echo b{% endif %}", "echo all"])
    _write(spec / "patches" / "vpp" / "always" / "10.json",
           {"pre_commands": ["{% if false %}never{% endif %}", "echo pre"]})  # fmt: skip
    plan = Lab.load(spec).plan
    assert plan.node("a").post_boot == ["echo all"]
    assert plan.node("b").post_boot == ["echo b", "echo all"]
    assert plan.node("a").patches[0].pre_commands == ["echo pre"]


SHIPPED = Path(patches.__file__).parents[1] / "patches"


@pytest.mark.parametrize(
    "descriptor", sorted(SHIPPED.glob("*/*/*.json")), ids=lambda p: str(p.relative_to(SHIPPED))
)
def test_each_shipped_patch_says_what_it_fixes_and_that_it_is_safe_to_repeat(
    descriptor: Path,
) -> None:
    patch = patches.BootPatch.model_validate_json(descriptor.read_text())
    assert len(patch.description) > 80 and "Safe to repeat" in patch.description
    for template in [f.template for f in patch.files] + [r.template for r in patch.redis]:
        assert (descriptor.parent / template).is_file()


@pytest.mark.parametrize(
    ("ifmap", "second"), [("sequential", "Ethernet1"), ("stride-4", "Ethernet4")]
)
def test_the_vpp_set_names_ports_as_the_interface_map_does(
    tmp_path: Path, ifmap: str, second: str
) -> None:
    devices = linked(("a:Ethernet0", "b:Ethernet0"), (f"a:{second}", f"b:{second}"))
    platform = {**PLATFORM, "vm_interface_map": ifmap, "vm_image_release": ""}
    node = Lab.load(write_specs(tmp_path, devices, platforms={"sw": platform})).plan.node("a")
    assert [p.source for p in node.patches] == [
        "built-in:vpp/always/01-disable-factory-hook.json",
        "built-in:vpp/always/02-port-config.json",
    ]
    files = {f.dest.rsplit("/", 1)[1]: f.content for f in node.patches[1].files}
    pci = [nic.pci for nic in node.nics[1:]]
    assert files["syncd_vpp_env"].splitlines()[1:4] == [
        f"VPP_DPDK_PORTS={pci[0]},{pci[1]}",
        "SONIC_NUM_PORTS=2",
        "VPP_PORT_LIST=eth1,eth2",
    ]
    assert files["port_config.ini"].splitlines()[2] == f"{second} 4 {second} 1 100000"
    assert files["sonic_vpp_ifmap.ini"] == f"Ethernet0 bobm0\n{second} bobm1\n"
    assert node.patches[1].redis[0].commands.splitlines()[1].startswith(f'HSET "PORT|{second}" ')
