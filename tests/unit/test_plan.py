"""The plan of real and synthetic spec dirs: nodes, NICs, ports, links, MACs, argv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from newtlab.errors import SpecErrors
from newtlab.lab import Lab
from newtlab.plan.bridges import newtlink_config
from newtlab.plan.model import Accel, BridgeSidePlan, ConsolePlan, Plan
from newtlab.plan.nodes import Homes
from newtlab.plan.plan import accelerated, build_plan, lab_name_for
from newtlab.plan.ports import collect_ports
from newtlab.spec.load import load_specs
from specfactory import EXAMPLES, FIXTURES, HOST_PLATFORM, SWITCH_PLATFORM, linked, write_specs


def plan_json(spec: Path, home: Path, seed: str) -> str:
    env = {**os.environ, "NEWTLAB_HOME": str(home), "PYTHONHASHSEED": seed}
    result = subprocess.run(
        [sys.executable, "-m", "newtlab", "plan", "-S", str(spec), "--json", "--no-probe"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_plan_byte_identically(example: str, tmp_path: Path) -> None:
    spec = FIXTURES / example / "specs"
    first = plan_json(spec, tmp_path, "1")
    second = plan_json(spec, tmp_path, "2")
    assert first == second
    plan = json.loads(first)
    assert plan["lab"] == example
    assert {"lab", "nodes", "links", "bridges"} <= plan.keys()
    for node in plan["nodes"]:
        for key in (
            "name",
            "device_type",
            "platform",
            "host",
            "image",
            "memory",
            "cpus",
            "ssh_port",
            "console_port",
            "nics",
            "qemu_argv",
        ):
            assert key in node
    for link in plan["links"]:
        for key in (
            "a",
            "z",
            "a_vm",
            "z_vm",
            "a_port",
            "z_port",
            "a_host",
            "z_host",
            "worker_host",
        ):
            assert key in link


def test_lab_name_from_newtron_layout(tmp_path: Path) -> None:
    assert lab_name_for(tmp_path / "fabric" / "specs") == "fabric"
    assert lab_name_for(tmp_path / "fabric") == "fabric"


def test_name_override(tmp_path: Path) -> None:
    spec = write_specs(tmp_path / "x", {"a": {}})
    assert Lab.load(spec, name="other").plan.lab == "other"


def test_2node_virtual_hosts_share_one_vm() -> None:
    plan = Lab.load(FIXTURES / "2node-ngdp" / "specs").plan
    assert [n.name for n in plan.nodes] == ["hostvm-0", "switch1", "switch2"]
    hostvm = plan.node("hostvm-0")
    assert hostvm.hosts == [f"host{i}" for i in range(1, 7)]
    assert hostvm.device_type == "host" and hostvm.platform == "alpine-host"
    # Each host has one linked interface (eth0), so host i's eth0 is NIC i.
    owners = [(n.index, n.device, n.interface, n.guest) for n in hostvm.nics[1:]]
    assert owners == [(i, f"host{i}", "eth0", f"eth{i}") for i in range(1, 7)]
    # Devices sort as host1..host6, switch1, switch2: the VM takes host1's ports.
    assert (hostvm.ssh_port, hostvm.console_port) == (13000, None)  # a Unix socket console
    assert (plan.node("switch1").ssh_port, plan.node("switch2").ssh_port) == (13006, 13007)
    link = next(ln for ln in plan.links if ln.a == "host4:eth0")
    assert (link.z, link.a_vm, link.a_nic, link.z_vm, link.z_nic) == (
        "switch2:Ethernet1",
        "hostvm-0",
        4,
        "switch2",
        2,
    )


def test_host_nic_base_counts_highest_linked_interface(tmp_path: Path) -> None:
    devices = linked(
        ("h1:eth2", "sw:Ethernet0"), ("h2:eth0", "sw:Ethernet1"), ("h2:eth1", "sw:Ethernet2")
    )
    profiles = {"h1": {"platform": "host"}, "h2": {"platform": "host"}, "sw": {"platform": "sw"}}
    plan = Lab.load(write_specs(tmp_path / "lab", devices, profiles=profiles)).plan
    vm = plan.node("hostvm-0")
    # h1 has slots eth0..eth2 (base 1), so h2 starts at 1 + 3 = 4.
    nics = {n.index: (n.device, n.interface) for n in vm.nics}
    assert nics[3] == ("h1", "eth2")
    assert nics[4] == ("h2", "eth0") and nics[5] == ("h2", "eth1")
    assert nics[1] == ("h1", "eth0") and nics[2] == ("h1", "eth1")
    assert [n.listen is None for n in vm.nics] == [True, True, True, False, False, False]


def test_host_groups_follow_vm_host(tmp_path: Path) -> None:
    devices = linked(
        ("h1:eth0", "sw:Ethernet0"), ("h2:eth0", "sw:Ethernet1"), ("h3:eth0", "sw:Ethernet2")
    )
    profiles = {
        "h1": {"platform": "host", "vm_host": "s2"},
        "h2": {"platform": "host", "vm_host": "s1"},
        "h3": {"platform": "host", "vm_host": "s2"},
        "sw": {"platform": "sw", "vm_host": "s1"},
    }
    servers = [{"name": "s1", "address": "10.0.0.1"}, {"name": "s2", "address": "10.0.0.2"}]
    plan = Lab.load(
        write_specs(tmp_path / "lab", devices, profiles=profiles, newtlab={"servers": servers})
    ).plan
    assert plan.node("hostvm-0").hosts == ["h2"] and plan.node("hostvm-0").host == "s1"
    assert plan.node("hostvm-1").hosts == ["h1", "h3"] and plan.node("hostvm-1").host == "s2"


def test_nics_are_contiguous_with_guest_names(tmp_path: Path) -> None:
    devices = linked(("a:Ethernet3", "b:Ethernet0"))
    plan = Lab.load(write_specs(tmp_path / "lab", devices)).plan
    a = plan.node("a")
    assert [(n.index, n.guest, n.listen is not None) for n in a.nics] == [
        (0, "mgmt", False),
        (1, "Ethernet0", False),
        (2, "Ethernet1", False),
        (3, "Ethernet2", False),
        (4, "Ethernet3", True),
    ]
    argv = " ".join(a.qemu_argv)
    assert "-device e1000,mac=" in argv  # unconnected NICs have no netdev
    assert argv.count("-netdev stream") == 1


def test_switch_shares_one_mac_and_hosts_get_one_per_nic(tmp_path: Path) -> None:
    devices = linked(
        ("sw:Ethernet0", "h1:eth0"), ("sw:Ethernet1", "h1:eth1"), ("sw:Ethernet2", "r:eth1")
    )
    platforms = {
        "sw": SWITCH_PLATFORM,
        "host": HOST_PLATFORM,
        "rtr": {"vm_image": "/r.qcow2", "vm_interface_map": "linux", "vm_nic_mac": "per-nic"},
    }
    profiles = {"sw": {"platform": "sw"}, "h1": {"platform": "host"}, "r": {"platform": "rtr"}}
    plan = Lab.load(
        write_specs(tmp_path / "lab", devices, platforms=platforms, profiles=profiles)
    ).plan
    sw = plan.node("sw")
    assert {n.mac for n in sw.nics} == {sw.mac}
    assert sw.mac.startswith("52:54:00:")
    for name in ("hostvm-0", "r"):
        macs = [n.mac for n in plan.node(name).nics]
        assert len(set(macs)) == len(macs)
    everything = [n.mac for node in plan.nodes for n in node.nics if node.name != "sw"] + [sw.mac]
    assert len(everything) == len(set(everything))


def test_qemu_argv_for_kvm_and_tcg(tmp_path: Path) -> None:
    platforms = {
        "sw": {
            **SWITCH_PLATFORM,
            "vm_cpu_features": "+sse4.2,+avx512f",
            "vm_memory": 2048,
            "vm_cpus": 3,
            "vm_nic_driver": "virtio-net-pci",
        }
    }
    devices = linked(("a:Ethernet0", "b:Ethernet0"))
    spec = write_specs(tmp_path / "lab", devices, platforms=platforms)
    kvm = Lab.load(spec, accel="kvm").plan.node("a").qemu_argv
    tcg = Lab.load(spec, accel="tcg").plan.node("a").qemu_argv

    def arg(argv: list[str], flag: str) -> str:
        return argv[argv.index(flag) + 1]

    assert arg(kvm, "-cpu") == "host,+sse4.2,+avx512f" and arg(kvm, "-accel") == "kvm"
    assert arg(tcg, "-cpu") == "max,+sse4.2" and arg(tcg, "-accel") == "tcg"
    assert arg(kvm, "-name") == "newtlab:lab:a"
    assert (arg(kvm, "-m"), arg(kvm, "-smp")) == ("2048", "3")
    assert (
        "stream,id=eth1,server=on,addr.type=unix,addr.path=qemu/a.nic1" in kvm
    )  # the bridge dials it
    assert any(
        a.startswith("virtio-net-pci,netdev=eth1,mac=52:54:00:") and a.endswith(",romfile=")
        for a in kvm
    )
    assert "user,id=mgmt,hostfwd=tcp:127.0.0.1:40000-:22" in kvm
    assert any(  # the console on a Unix socket in the lab directory (its owner's only)
        a.startswith(
            "socket,id=console,path=qemu/a.console,server=on,wait=off,logfile=logs/a.console.log"
        )
        for a in kvm
    )


def test_profile_overrides_platform_overrides_defaults(tmp_path: Path) -> None:
    platforms = {"sw": {"vm_image": "~/.newtlab/images/sw.qcow2", "vm_memory": 2048}}
    profiles = {
        "a": {"platform": "sw", "vm_memory": 1024, "vm_cpus": 4},
        "b": {"platform": "sw", "vm_image": "~/img/b.qcow2"},
        "c": {"platform": "sw", "vm_image": "rel/c.qcow2"},
    }
    spec = write_specs(
        tmp_path / "lab", {"a": {}, "b": {}, "c": {}}, platforms=platforms, profiles=profiles
    )
    plan = Lab.load(spec).plan
    a, b, c = plan.node("a"), plan.node("b"), plan.node("c")
    assert (a.memory, a.cpus, b.memory, b.cpus) == (1024, 4, 2048, 2)
    assert (a.nic_driver, a.interface_map, a.boot_timeout) == ("e1000", "stride-4", 180)
    assert a.image == os.path.join(os.environ["NEWTLAB_HOME"], "images/sw.qcow2")
    assert b.image == str(Path.home() / "img/b.qcow2")
    assert c.image == str(spec.resolve() / "rel/c.qcow2")


def test_ports_follow_the_formulas(tmp_path: Path) -> None:
    devices = linked(
        ("a:Ethernet0", "b:Ethernet0"),
        ("b:Ethernet1", "c:Ethernet0"),
        ("a:Ethernet1", "c:Ethernet1"),
    )
    spec = write_specs(
        tmp_path / "lab",
        devices,
        newtlab={
            "link_port_base": 21000,
            "console_port_base": 31000,
            "ssh_port_base": 41000,
            "console": "tcp",
        },
    )
    plan = Lab.load(spec).plan
    assert any(a.startswith("socket,id=console,host=127.0.0.1,port=31000,") for a in
               plan.node("a").qemu_argv)  # fmt: skip
    assert [(n.name, n.ssh_port, n.console_port) for n in plan.nodes] == [
        ("a", 41000, 31000),
        ("b", 41001, 31001),
        ("c", 41002, 31002),
    ]
    assert [(ln.a, ln.z, ln.a_port, ln.z_port) for ln in plan.links] == [
        ("a:Ethernet0", "b:Ethernet0", 21000, 21001),
        ("a:Ethernet1", "c:Ethernet1", 21002, 21003),
        ("b:Ethernet1", "c:Ethernet0", 21004, 21005),
    ]
    # The link ports are reserved, but only a link between servers listens on one: every
    # VM NIC is a Unix socket in the lab directory, and the bridge listens on no TCP port.
    purposes = sorted(u.purpose for u in collect_ports(plan))
    assert purposes == ["a SSH", "a console", "b SSH", "b console", "c SSH", "c console"]


def test_explicit_links_keep_orientation_and_are_sorted(tmp_path: Path) -> None:
    links = [{"a": "z:Ethernet0", "z": "a:Ethernet0"}, {"a": "b:Ethernet0", "z": "a:Ethernet1"}]
    plan = Lab.load(write_specs(tmp_path / "lab", {"a": {}, "b": {}, "z": {}}, links=links)).plan
    assert [(ln.a, ln.z) for ln in plan.links] == [
        ("b:Ethernet0", "a:Ethernet1"),
        ("z:Ethernet0", "a:Ethernet0"),
    ]


def test_single_host_bridge_dials_every_vm_nic_on_its_unix_socket(tmp_path: Path) -> None:
    devices = linked(("a:Ethernet0", "b:Ethernet0"))
    plan = Lab.load(write_specs(tmp_path / "lab", devices)).plan
    (link,) = plan.links
    assert (link.a_host, link.z_host, link.worker_host) == ("local", "local", "local")
    assert plan.node("a").nics[1].listen == "qemu/a.nic1"
    assert plan.node("b").nics[1].listen == "qemu/b.nic1"
    assert newtlink_config("lab", plan.bridges["local"]) == {
        "lab": "lab",
        "links": [{"a": "a:Ethernet0", "z": "b:Ethernet0",
                   "a_dial": "unix:qemu/a.nic1", "z_dial": "unix:qemu/b.nic1"}],
    }  # fmt: skip


def test_cross_host_link_is_one_connection_bridge_to_bridge(tmp_path: Path) -> None:
    devices = linked(("a:Ethernet0", "b:Ethernet0"), ("a:Ethernet1", "c:Ethernet0"))
    profiles = {
        "a": {"platform": "sw", "vm_host": "s1"},
        "b": {"platform": "sw", "vm_host": "s2"},
        "c": {"platform": "sw", "vm_host": "s1"},
    }
    servers = [{"name": "s1", "address": "10.0.0.1"}, {"name": "s2", "address": "10.0.0.2"}]
    plan = Lab.load(
        write_specs(tmp_path / "lab", devices, profiles=profiles, newtlab={"servers": servers})
    ).plan
    cross, local = plan.links
    assert (cross.a_host, cross.z_host) == ("s1", "s2")
    assert cross.worker_host == "s1"  # tie between s1 and s2 → smaller name
    # Every VM NIC listens on a Unix socket in the lab directory of its own server.
    assert plan.node("a").nics[1].listen == "qemu/a.nic1"
    assert plan.node("b").nics[1].listen == "qemu/b.nic1"
    assert set(plan.bridges) == {"s1", "s2"}
    s1, s2 = plan.bridges["s1"], plan.bridges["s2"]
    # s1 dials its VM and listens for s2 (only s2) on the reserved port of b's end.
    s1_cross, s1_local = s1.links
    assert s1_cross.a == BridgeSidePlan(name=cross.a, dial="unix:qemu/a.nic1")
    assert s1_cross.z == BridgeSidePlan(
        name=cross.z, listen=f"10.0.0.1:{cross.z_port}", allow=["10.0.0.2"]
    )
    assert (s1_local.a.dial, s1_local.z.dial) == (
        f"unix:qemu/{local.a_vm}.nic{local.a_nic}",
        f"unix:qemu/{local.z_vm}.nic{local.z_nic}",
    )
    # s2 dials its own VM and dials s1: no listener on s2.
    (s2_cross,) = s2.links
    assert s2_cross.a == BridgeSidePlan(name=cross.a, dial=f"10.0.0.1:{cross.z_port}")
    assert s2_cross.z == BridgeSidePlan(name=cross.z, dial="unix:qemu/b.nic1")
    config = newtlink_config("lab", s1)["links"][0]
    assert config == {
        "a": cross.a, "z": cross.z, "a_dial": "unix:qemu/a.nic1",
        "z_port": cross.z_port, "z_bind": "10.0.0.1", "z_allow": ["10.0.0.2"],
    }  # fmt: skip
    exposed = [u for u in collect_ports(plan) if u.bind != "127.0.0.1" and u.port < 30000]
    assert [(u.host, u.bind, u.port) for u in exposed] == [("s1", "10.0.0.1", cross.z_port)]
    # SSH is forwarded on each server's own address (newtron reaches VMs there); consoles
    # are Unix sockets there, reached through the host.
    assert (plan.node("b").host, plan.node("b").ssh_bind) == ("s2", "10.0.0.2")
    assert [h.ip for h in plan.hosts if h.name == "s2"] == ["10.0.0.2"]
    assert "user,id=mgmt,hostfwd=tcp:10.0.0.2:40001-:22" in plan.node("b").qemu_argv
    assert any(a.startswith("socket,id=console,path=qemu/b.") for a in plan.node("b").qemu_argv)


def test_servers_named_and_multi_homed(tmp_path: Path) -> None:
    """Names resolve to IPs (looked up by the caller); a source_address is what peers allow."""
    devices = linked(("a:Ethernet0", "b:Ethernet0"))
    profiles = {"a": {"platform": "sw", "vm_host": "s1"}, "b": {"platform": "sw", "vm_host": "s2"}}
    servers = [
        {"name": "s1", "address": "alpha.lab", "user": "lab", "ssh_port": 2222},
        {"name": "s2", "address": "10.0.0.2", "source_address": "10.9.0.2"},
    ]
    spec = write_specs(tmp_path / "lab", devices, profiles=profiles, newtlab={"servers": servers})
    plan = build_plan(
        load_specs(spec),
        "lab",
        tmp_path,
        Homes(tmp_path, tmp_path),
        "tcg",
        {"alpha.lab": "10.0.0.1"},
    )
    s1 = plan.hosts[0]
    assert (s1.address, s1.ip, s1.user, s1.ssh_port) == ("alpha.lab", "10.0.0.1", "lab", 2222)
    (link,) = plan.links
    worker = plan.bridges["s1"].links[0]
    assert worker.z.listen == f"10.0.0.1:{link.z_port}" and worker.z.allow == ["10.9.0.2"]
    far = plan.bridges["s2"].links[0]
    assert far.a == BridgeSidePlan(name=link.a, dial=f"10.0.0.1:{link.z_port}", source="10.9.0.2")
    assert newtlink_config("lab", plan.bridges["s2"])["links"][0]["a_source"] == "10.9.0.2"


def test_legacy_hosts_map_is_a_pool(tmp_path: Path) -> None:
    profiles = {"a": {"platform": "sw", "vm_host": "h2"}, "b": {"platform": "sw"}}
    spec = write_specs(
        tmp_path / "lab",
        {"a": {}, "b": {}},
        profiles=profiles,
        newtlab={"hosts": {"h1": "10.1.0.1", "h2": "10.1.0.2"}},
    )
    plan = Lab.load(spec).plan
    assert (plan.node("a").host, plan.node("b").host) == ("h2", "h1")


def test_unknown_fields_are_accepted_everywhere(tmp_path: Path) -> None:
    devices = {
        "a": {"device_config": {"rr": True}, "interfaces": {"Ethernet0": {"ip": "10.0.0.1/31"}}}
    }
    platforms = {"sw": {**SWITCH_PLATFORM, "unsupported_features": ["acl"]}}
    profiles = {"a": {"platform": "sw", "evpn": {"peers": ["b"]}, "underlay_asn": 65001}}
    plan = Lab.load(
        write_specs(tmp_path / "lab", devices, platforms=platforms, profiles=profiles)
    ).plan
    assert plan.node("a").platform == "sw"


def test_examples_take_the_host_image_platform_from_the_catalog() -> None:
    """The examples name the catalog entry, so they follow the image's console contract."""
    from newtlab.image import host_platform

    for example in ("line3", "hosts2"):
        specs = load_specs(Path(__file__).parents[2] / "examples" / example)
        platform = specs.platforms.platforms["newtlab-host"]
        assert platform.base == "newtlab-host"
        assert platform.model_dump(exclude={"base"}, exclude_defaults=True) == (
            type(platform).model_validate(host_platform()).model_dump(exclude_defaults=True)
        )


def test_dialog_templates_are_jinja2_and_the_old_form_is_named(tmp_path: Path) -> None:
    devices = linked(("a:Ethernet0", "b:Ethernet0"))

    def load(bootstrap: list[str]) -> None:
        platform = {**SWITCH_PLATFORM, "vm_console": {"bootstrap": bootstrap}}
        Lab.load(write_specs(tmp_path / str(len(bootstrap)), devices, platforms={"sw": platform}))

    load(["hostname {{ hostname }}"])
    with pytest.raises(SpecErrors) as old:
        load(["true", "hostname {hostname}"])
    assert "platforms.sw.vm_console.bootstrap[1]" in str(old.value)
    assert "write {{ hostname }}" in str(old.value)
    with pytest.raises(SpecErrors, match=r"bootstrap\[0\]: .*undefined"):
        load(["echo {{ nope }}", "x", "y"])


def test_console_dialogs_become_explicit_steps_and_bad_ones_are_spec_errors(
    tmp_path: Path,
) -> None:
    devices = linked(("a:Ethernet0", "b:Ethernet0"))

    def console(vm_console: dict[str, object]) -> ConsolePlan:
        directory = tmp_path / str(len(list(tmp_path.iterdir())))
        platform = {**SWITCH_PLATFORM, "vm_console": vm_console}
        return (
            Lab.load(write_specs(directory, devices, platforms={"sw": platform}))
            .plan.node("a")
            .console
        )

    usual = console({"shell_prompt": "sonic# $"})
    assert [(s.name, s.expect, s.send, s.optional, s.nudge) for s in usual.login] == [
        ("login", "login:", "{{ console_user }}", True, True),
        ("password", "assword:", "{{ console_pass }}", True, False),
        ("shell", "sonic# $", None, False, False),
    ]
    assert usual.fail and usual.ignore  # the device type's
    own = console({"login": [{"expect": "Router>", "send": "enable"}, {"expect": "#"}],
                   "ignore": []})  # fmt: skip
    assert [(s.name, s.nudge) for s in own.login] == [("1", True), ("2", False)]
    assert own.ignore == [] and own.fail == usual.fail
    for bad, where in [
        ({"login": []}, "vm_console.login: no login dialog, but commands to type after it"),
        ({"login": [{"expect": "(oops"}]}, "vm_console.login[0].expect: '(oops' is not a regular"),
        ({"login": [{"expect": "#", "send": "{console_user}"}]}, "login[0].send: {console_user}"),
        ({"login": [{"expect": "#", "send": "{{ nope }}"}]}, "login[0].send: 'nope' is undefined"),
        ({"fail": ["[x"]}, "vm_console.fail[0]: '[x' is not a regular expression"),
        ({"login": [{"expect": "#", "retries": -1}]}, "retries"),
    ]:
        with pytest.raises(SpecErrors) as error:
            console(bad)
        assert where in str(error.value), (bad, str(error.value))


def test_a_plan_moved_to_other_accelerators_is_the_plan_made_for_them(tmp_path: Path) -> None:
    """Deploy plans for KVM, then moves each host to what it can run: the same plan as
    one made for those accelerators from the start, one server at a time."""
    devices = linked(("a:Ethernet0", "b:Ethernet0"))
    profiles = {"a": {"platform": "sw", "vm_host": "s1"}, "b": {"platform": "sw", "vm_host": "s2"}}
    servers = [{"name": "s1", "address": "10.0.0.1"}, {"name": "s2", "address": "10.0.0.2"}]
    spec = write_specs(tmp_path / "lab", devices, profiles=profiles, newtlab={"servers": servers})
    specs, homes = load_specs(spec), Homes(tmp_path, tmp_path)

    def plan(accel: Accel | dict[str, Accel]) -> Plan:
        return build_plan(specs, "lab", tmp_path, homes, accel)

    kvm, tcg, mixed = plan("kvm"), plan("tcg"), plan({"s1": "kvm", "s2": "tcg"})
    assert accelerated(kvm, {"s1": "tcg", "s2": "tcg"}) == tcg
    assert accelerated(tcg, {"s1": "kvm", "s2": "kvm"}) == kvm
    assert accelerated(kvm, {"s2": "tcg"}) == mixed != kvm  # hosts not named keep theirs
    assert accelerated(kvm, {}) is kvm
