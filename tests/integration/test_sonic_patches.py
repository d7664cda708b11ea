"""newtlab's shipped SONiC boot patches, run for real on host-image VMs that imitate SONiC.

Four VMs, each of a platform naming a SONiC dataplane, so the built-in sets
apply: v1 (vpp), c1 (ciscovs), s1 (sonic-vs) and s2 (sonic-vs on a SONiC
release the file-editing patches do not know). What is imitated, and how, is
in sonic_imitation/README.md: the platforms boot with a second initramfs holding
Debian's real redis-server and python3 and the imitation; at every boot a NoCloud
user-data script restores what a SONiC disk keeps (saved by the test before a stop)
and boots the imitation (redis with CONFIG_DB, the bgp container). A spec-dir patch sorted
first (``00-fake-sonic``) starts a first-boot ``config-setup`` and, on c1,
swss's readiness key 6 s later. The sonic-vs set's wait is replaced by a
spec-dir file of the same name. Every file, CONFIG_DB entry and command the
descriptors promise is checked, then again after a stop and start of c1 and
s1, when the patches meet what they did on the first boot.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
from guest_packages import GUEST_HOST, initrd_with, python_archive, redis_archive, serve
from labkit import SpecDir, run_cli, ssh, status, wait_for

from newtlab.image import BuiltImage
from newtlab.state import load_state

pytestmark = pytest.mark.integration

IMITATION = Path(__file__).parent / "sonic_imitation" / "root"
HOOK = "/etc/config-setup/factory-default-hooks.d/10-01-vpp-cfg-init"
DETACHED = "</dev/null >/dev/null 2>&1 &"
KNOWN = "202505.1057313-e5d9bf0b6"  # as build_version of newtron's sonic-vs image would read
UNKNOWN = "202411.786-a1b2c3d4"
BGP = "/var/lib/docker-imitation/bgp/rootfs"  # the bgp container's root, seen from the guest
FRRCFGD = "/usr/local/lib/python3.11/dist-packages/frrcfgd/frrcfgd.py"
TEMPLATE = "/usr/local/sonic/frrcfgd/bgpd.conf.db.j2"
VNIS = {"Vrf1": "1001", "Vrf2": "2001"}  # Vrf1 is in the factory config; newtron adds Vrf2

TOPOLOGY = {
    "devices": {
        "v1": {
            "interfaces": {
                "Ethernet0": {"link": "c1:Ethernet0"},
                "Ethernet1": {"link": "s1:Ethernet0"},
            }
        },
        "c1": {"interfaces": {"Ethernet0": {"link": "v1:Ethernet0"}}},
        "s1": {"interfaces": {"Ethernet0": {"link": "v1:Ethernet1"}}},
        "s2": {"interfaces": {}},
    }
}
PLATFORMS = {"v1": ("sonic-vpp", "vpp"), "c1": ("sonic-ciscovs", "ciscovs"),
             "s1": ("sonic-vs", "sonic-vs"), "s2": ("sonic-vs", "sonic-vs")}  # fmt: skip
FAKE_SONIC = {
    "description": "test: a first-boot config-setup still running; on c1, swss ready 6 s later",
    "post_commands": [
        f"config-setup {DETACHED}",
        "{% if node == 'c1' %}(sleep 6; redis-cli -n 0 HSET PORT_TABLE:PortInitDone"
        f" lanes 0) {DETACHED}{{% endif %}}",
    ],
}
# At every boot, before SSH answers: what the disk kept, then SONiC's boot (the imitation
# itself, redis and python3 are in the initramfs).
USER_DATA = """#!/bin/sh
set -e
ip link set eth0 up
udhcpc -i eth0 -t 20 -T 1 -A 1 -n -q >/dev/null
if wget -q -O /tmp/disk.b64 http://{host}:{port}/{node}-disk.b64; then
  base64 -d /tmp/disk.b64 | tar -xzf - -C /
fi
sonic-imitation-boot {release}
"""


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, host_image: BuiltImage
) -> Iterator[tuple[Path, int]]:
    """The directory the guests fetch saved disks from, and its HTTP port; in it, the
    image's initramfs followed by redis, python3 and the imitation (``initrd.gz``)."""
    directory = tmp_path_factory.mktemp("served")
    parts = tmp_path_factory.mktemp("parts")
    sonic = parts / "sonic.tgz"
    with tarfile.open(sonic, "w:gz") as tar:
        for path in sorted(IMITATION.rglob("*")):
            tar.add(path, str(path.relative_to(IMITATION)), recursive=False)
    archives = [redis_archive(parts), python_archive(parts), sonic]
    initrd_with(host_image.initrd, archives, directory / "initrd.gz")
    with serve(directory) as port:
        yield directory, port


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))


def _make_sonic_like(spec: SpecDir, port: int, initrd: Path) -> None:
    platforms_path = spec.path / "platforms.json"
    platforms = json.loads(platforms_path.read_text())["platforms"]
    host = platforms["newtlab-host"]
    for node, (platform, dataplane) in PLATFORMS.items():
        platforms[platform] = {
            **host,
            "dataplane": dataplane,
            "hwsku": "Force10-S6000",
            "default_speed": "100G",
            "vm_interface_map": "sequential",
            "vm_initrd": str(initrd),
            "vm_memory": 384,  # python3 and redis unpacked in the guest's RAM
            "vm_boot_timeout": 300,  # four TCG guests booting at once, on two cores
            "vm_post_boot": [
                'echo "portinit=$(redis-cli -n 0 EXISTS PORT_TABLE:PortInitDone)" >> /tmp/order'
            ],
        }
        _write(spec.path / "profiles" / f"{node}.json", {"platform": platform})
        release = UNKNOWN if node == "s2" else KNOWN
        script = USER_DATA.format(host=GUEST_HOST, port=port, node=node, release=release)
        _write(spec.path / "configs" / f"{node}.cfg", script)
        _write(spec.path / "patches" / dataplane / "always" / "00-fake-sonic.json", FAKE_SONIC)
    _write(platforms_path, {"platforms": platforms})
    for stale in ("r1", "r2", "r3"):
        (spec.path / "profiles" / f"{stale}.json").unlink()
    replaced = {"description": "test: replaces the built-in wait", "pre_commands":
                ["echo replaced-wait >> /tmp/order"]}  # fmt: skip
    _write(spec.path / "patches" / "sonic-vs" / "always" / "03-wait-swss.json", replaced)


def _order(node: str) -> list[str]:
    """What the node logged, in order, without config-setup's own line."""
    return [line for line in ssh(node, "cat /tmp/order").splitlines() if "config-setup" not in line]


def _lines(node: str, path: str) -> list[str]:
    return ssh(node, f"cat {path} 2>/dev/null || true").splitlines()


def _hash(node: str, key: str) -> dict[str, str]:
    flat = ssh(node, f"redis-cli -n 4 --raw HGETALL '{key}'").splitlines()
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _keys(node: str) -> set[str]:
    return set(ssh(node, "redis-cli -n 4 --raw KEYS '*'").split())


def _save_disk(served: Path, node: str) -> None:
    """What the node's SONiC disk would keep, for its next boot to restore."""
    (served / f"{node}-disk.b64").write_text(ssh(node, "sonic-imitation-disk"))


def _check_vpp(pci: list[str]) -> None:
    order = ssh("v1", "cat /tmp/order").splitlines()
    # The hook is disabled only once config-setup has finished.
    assert order[:3] == ["config-setup-done", "config save -y", "systemctl restart syncd"]
    assert ssh("v1", f"ls {HOOK}*").split() == [f"{HOOK}.disabled"]
    # The PCI addresses are the guest's own: eth1 and eth2 are those (virtio) NICs.
    for i, address in enumerate(pci, start=1):
        assert (
            ssh("v1", f"basename $(readlink -f /sys/class/net/eth{i}/device/..)").strip() == address
        )
    assert ssh("v1", "cat /etc/sonic/vpp/syncd_vpp_env").splitlines() == [
        "DPDK_DISABLE=n",
        f"VPP_DPDK_PORTS={','.join(pci)}",
        "SONIC_NUM_PORTS=2",
        "VPP_PORT_LIST=eth1,eth2",
        "NO_LINUX_NL=y",
    ]
    hwsku = "/usr/share/sonic/device/x86_64-kvm_x86_64-r0/Force10-S6000"
    assert ssh("v1", f"cat {hwsku}/port_config.ini").splitlines() == [
        "# name lanes alias index speed",
        "Ethernet0 0 Ethernet0 0 100000",
        "Ethernet1 4 Ethernet1 1 100000",
    ]
    assert ssh("v1", f"cat {hwsku}/sonic_vpp_ifmap.ini").splitlines() == [
        "Ethernet0 bobm0",
        "Ethernet1 bobm1",
    ]
    assert _hash("v1", "PORT|Ethernet1") == {
        "admin_status": "up", "alias": "Ethernet1", "index": "1", "lanes": "4",
        "mtu": "9100", "speed": "100000",
    }  # fmt: skip


def _check_frrcfgd_mode(node: str) -> None:
    metadata = _hash(node, "DEVICE_METADATA|localhost")
    assert metadata["docker_routing_config_mode"] == "unified"
    assert metadata["frr_mgmt_framework_config"] == "true"
    saved = json.loads(ssh(node, "cat /etc/sonic/config_db.json"))
    assert saved["DEVICE_METADATA"]["localhost"]["docker_routing_config_mode"] == "unified"
    running = ssh(node, "docker exec bgp supervisorctl status frrcfgd")
    assert "RUNNING" in running, running


def _check_vni(vrfs: list[str]) -> None:
    """frrcfgd carries the edit once and has told zebra each VRF's vni, once, through vtysh."""
    assert ssh("c1", f"grep -c 'newtlab: vrf-vni sync' {BGP}{FRRCFGD}").strip() == "1"
    wanted = sorted(f"configure terminal / vrf {vrf} / vni {VNIS[vrf]}" for vrf in vrfs)

    def told() -> list[str]:
        return sorted(_lines("c1", f"{BGP}/var/log/vtysh.log"))

    wait_for(lambda: len(told()) >= len(wanted), timeout=60)
    assert told() == wanted


def _render(template: str, globals_: dict[str, str]) -> str:
    """As sonic-cfggen renders SONiC's templates: a block tag's line leaves no blank line."""
    environment = jinja2.Environment(trim_blocks=True)
    return environment.from_string(template).render(BGP_GLOBALS={"default": globals_})


def _check_ebgp_template(original: str) -> None:
    """The template renders `no bgp ebgp-requires-policy` exactly when the field says false."""
    patched = ssh("s1", f"cat {BGP}{TEMPLATE}")
    assert patched.count("newtlab: ebgp_requires_policy") == 1
    base = {"local_asn": "65100", "router_id": "10.1.0.1"}
    off = _render(patched, {**base, "ebgp_requires_policy": "false"}).splitlines()
    assert off[off.index(" no bgp default ipv4-unicast") + 1] == " no bgp ebgp-requires-policy"
    for fields in (base, {**base, "ebgp_requires_policy": "true"}):
        assert _render(patched, fields) == _render(original, fields)


def test_shipped_sonic_patches_on_sonic_imitations(make_lab, served: tuple[Path, int]) -> None:  # type: ignore[no-untyped-def]
    directory, port = served
    spec: SpecDir = make_lab(edit=lambda topology: topology.update(TOPOLOGY))
    _make_sonic_like(spec, port, directory / "initrd.gz")
    planned = run_cli("plan", "-S", str(spec.path), "--no-probe", "--json")
    assert planned.returncode == 0, planned.stderr
    sources = {
        node["name"]: [p["source"] for p in node["patches"]]
        for node in json.loads(planned.stdout)["nodes"]
    }
    assert sources["s1"] == [
        str(spec.path / "patches/sonic-vs/always/00-fake-sonic.json"),
        "built-in:sonic-vs/always/00-frrcfgd-mode.json",
        "built-in:sonic-vs/always/01-clean-factory-config.json",
        "built-in:sonic-vs/always/02-frrcfgd-ebgp-policy.json",
        str(spec.path / "patches/sonic-vs/always/03-wait-swss.json"),
    ]
    assert sources["c1"][1:] == [
        "built-in:ciscovs/always/00-frrcfgd-mode.json",
        "built-in:ciscovs/always/01-frrcfgd-vni-bootstrap.json",
        "built-in:ciscovs/always/02-wait-swss.json",
    ]
    shown = run_cli("plan", "-S", str(spec.path), "--no-probe").stdout
    assert "── boot patch built-in:ciscovs/always/01-frrcfgd-vni-bootstrap.json (c1) ──" in shown
    assert "Runs on SONiC 202505 only." in shown

    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", timeout=600)
    assert result.returncode != 0
    # s2's SONiC is a release the ebgp patch was not written for: it stops before any patch.
    refusal = (
        "s2: boot patch built-in:sonic-vs/always/02-frrcfgd-ebgp-policy.json, sonic_releases "
        f"`202505` failed (exit 1): this image is SONiC 202411 (build_version {UNKNOWN}) / "
        "02-frrcfgd-ebgp-policy.json was written for SONiC 202505 only, so no boot patch was "
        "applied: check it against this release, then add the release to its sonic_releases in "
        "a copy in your spec dir's patches/sonic-vs/always/ (copy "
    )
    assert refusal in " ".join(result.stderr.split()), result.stderr
    nodes = {n["name"]: n["status"] for n in status()["nodes"]}
    assert nodes == {"v1": "running", "c1": "running", "s1": "running", "s2": "error"}
    factory_template = ssh("s2", f"cat {BGP}{TEMPLATE}")
    assert "newtlab" not in factory_template and not ssh("s2", "cat /tmp/order 2>/dev/null || :")
    assert _hash("s2", "DEVICE_METADATA|localhost")["docker_routing_config_mode"] == "separated"
    assert {"BGP_NEIGHBOR|10.0.0.1", "INTERFACE|Ethernet0"} <= _keys("s2")

    pci = [nic.pci for nic in load_state(spec.lab).plan.node("v1").nics[1:]]
    _check_vpp(pci)

    # Cisco VS: frrcfgd's mode set, saved, bgp restarted; frrcfgd edited and restarted once; it
    # tells zebra the factory VRF's vni, and one newtron adds; then the wait for swss.
    assert _order("c1") == ["config save -y", "systemctl restart bgp", "portinit=1"]
    _check_frrcfgd_mode("c1")
    supervisor = f"{BGP}/var/log/supervisor.log"
    assert _lines("c1", supervisor) == ["start all", "stop all", "start all", "restart frrcfgd"]
    _check_vni(["Vrf1"])
    ssh("c1", f"redis-cli -n 4 HSET 'VRF|Vrf2' vni {VNIS['Vrf2']} >/dev/null && config save -y")
    _check_vni(["Vrf1", "Vrf2"])

    # SONiC VS: frrcfgd's mode; the factory entries gone, others kept, the config saved; the
    # template edited; the spec dir's wait instead of newtlab's (which would never end here).
    assert _order("s1") == [
        "config save -y", "systemctl restart bgp", "config save -y", "replaced-wait", "portinit=0",
    ]  # fmt: skip
    _check_frrcfgd_mode("s1")
    kept = {
        "DEVICE_METADATA|localhost", "LOOPBACK_INTERFACE|Loopback0", "VLAN|Vlan1000",
        "VLAN_INTERFACE|Vlan1000", "VLAN_INTERFACE|Vlan1000|192.168.0.1/21", "VRF|Vrf1",
    }  # fmt: skip
    assert _keys("s1") == kept
    saved = json.loads(ssh("s1", "cat /etc/sonic/config_db.json"))
    assert {f"{table}|{key}" for table, entries in saved.items() for key in entries} == kept
    _check_ebgp_template(factory_template)
    # newtron configures the switch and saves it: a later boot must keep it.
    newtron = {"INTERFACE|Ethernet0": "NULL NULL", "INTERFACE|Ethernet0|10.9.9.0/31": "NULL NULL",
               "BGP_NEIGHBOR|10.9.9.1": "asn 65200"}  # fmt: skip
    writes = "".join(f"redis-cli -n 4 HSET '{k}' {v} >/dev/null && " for k, v in newtron.items())
    ssh("s1", writes + "config save -y")

    # A stop and start: the disk kept what the patches did, and they meet it. (v1 is left
    # out: the vpp set keeps nothing a boot would meet, it writes every file and entry anew.)
    for node in ("c1", "s1"):
        _save_disk(directory, node)
    assert run_cli("stop", "c1", "s1", "--grace", "0").returncode == 0
    refused = run_cli("start", "c1", "v1", "s1")  # v1 runs: none of them is started
    assert refused.returncode == 1
    assert "nothing was started: v1 is already running" in " ".join(refused.stderr.split())
    assert {n["name"]: n["status"] for n in status()["nodes"]}["c1"] == "stopped"
    started = run_cli("start", "c1", "s1", timeout=300)  # both boot at once
    assert started.returncode == 0, started.stderr
    # frrcfgd runs from the saved mode at boot: no save, no restart, the edit not added again.
    assert _order("c1") == ["portinit=1"]
    _check_frrcfgd_mode("c1")
    assert _lines("c1", supervisor) == ["start all"]
    _check_vni(["Vrf1", "Vrf2"])
    assert _order("s1") == ["replaced-wait", "portinit=0"]
    assert _keys("s1") == kept | set(newtron)
    _check_ebgp_template(factory_template)
