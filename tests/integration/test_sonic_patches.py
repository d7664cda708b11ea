"""newtlab's shipped SONiC boot patches, run for real on host-image VMs made SONiC-like.

Each VM's platform names a SONiC dataplane (vpp, ciscovs, sonic-vs), so the
built-in patch sets apply. A spec-dir patch sorted first (``00-fake-sonic``)
makes the guest look enough like SONiC for them: Debian's real redis-server,
stubs for ``sudo``, ``config``, ``systemctl`` (they log what they were asked),
``sonic-db-cli`` (over redis-cli) and ``pgrep -f``, a first-boot
``config-setup`` still running, and the VPP factory hook. The sonic-vs set's wait is replaced by a
spec-dir file of the same name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from guest_redis import GUEST_HOST, redis_archive, serve
from labkit import SpecDir, run_cli, ssh

from newtlab.state import load_state

pytestmark = pytest.mark.integration

STUBS = {
    "sudo": '#!/bin/sh\nexec "$@"\n',
    "config": '#!/bin/sh\necho "config $*" >> /tmp/order\n',
    "systemctl": '#!/bin/sh\necho "systemctl $*" >> /tmp/order\n',
    "sonic-db-cli": (
        "#!/bin/sh\n"
        'case "$1" in CONFIG_DB) db=4 ;; STATE_DB) db=6 ;; *) db=0 ;; esac\n'
        'shift\nexec redis-cli -n "$db" "$@"\n'
    ),
    "config-setup": "#!/bin/sh\nsleep 4\necho config-setup-done >> /tmp/order\n",
    "pgrep": (  # procps' pgrep -f, which busybox here lacks
        "#!/bin/sh\n"
        '[ "$1" = -f ] && shift\n'
        "found=1\n"
        "for d in /proc/[0-9]*; do\n"
        '  [ "${d#/proc/}" = $$ ] && continue\n'
        '  if tr "\\0" " " < "$d/cmdline" 2>/dev/null | grep -q -- "$1"; then\n'
        '    echo "${d#/proc/}"; found=0\n'
        "  fi\n"
        "done\n"
        "exit $found\n"
    ),
}
HOOK = "/etc/config-setup/factory-default-hooks.d/10-01-vpp-cfg-init"
DETACHED = "</dev/null >/dev/null 2>&1 &"


def _fake_sonic(port: int) -> dict[str, object]:
    return {
        "description": "test: make the guest SONiC-like enough for the shipped patches",
        "pre_commands": [
            f"wget -q -O /tmp/redis.tgz http://{GUEST_HOST}:{port}/redis.tgz",
            "tar -xzf /tmp/redis.tgz -C /",
            "redis-server --daemonize yes --save '' --appendonly no >/dev/null",
            "until redis-cli ping | grep -q PONG; do sleep 1; done",
        ],
        "files": [{"template": f"{name}.sh", "dest": f"/usr/bin/{name}"} for name in STUBS]
        + [{"template": "hook.sh", "dest": HOOK}],
        "post_commands": [
            "chmod +x " + " ".join(f"/usr/bin/{name}" for name in STUBS),
            f"config-setup {DETACHED}",
            # swss comes up 6 s later, on the ciscovs node only (sonic-vs never gets there)
            "{% if dataplane == 'ciscovs' %}(sleep 6; redis-cli -n 0 HSET PORT_TABLE:PortInitDone"
            f" lanes 0) {DETACHED}{{% endif %}}",
        ],
    }


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
    }
}
PLATFORMS = {"v1": ("sonic-vpp", "vpp"), "c1": ("sonic-ciscovs", "ciscovs"),
             "s1": ("sonic-vs", "sonic-vs")}  # fmt: skip


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    directory = tmp_path_factory.mktemp("redis")
    redis_archive(directory)
    with serve(directory) as port:
        yield port


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))


def _make_sonic_like(spec: SpecDir, port: int) -> None:
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
            "vm_post_boot": [
                'echo "portinit=$(redis-cli -n 0 EXISTS PORT_TABLE:PortInitDone)" >> /tmp/order'
            ],
        }
        _write(spec.path / "profiles" / f"{node}.json", {"platform": platform})
        patches = spec.path / "patches" / dataplane / "always"
        _write(patches / "00-fake-sonic.json", _fake_sonic(port))
        for name, text in STUBS.items():
            _write(patches / f"{name}.sh", text)
        _write(patches / "hook.sh", "#!/bin/sh\n# the factory hook\n")
    _write(platforms_path, {"platforms": platforms})
    for stale in ("r1", "r2", "r3"):
        (spec.path / "profiles" / f"{stale}.json").unlink()
    replaced = {"description": "test: replaces the built-in wait", "pre_commands":
                ["echo replaced-wait >> /tmp/order"]}  # fmt: skip
    _write(spec.path / "patches" / "sonic-vs" / "always" / "01-wait-swss.json", replaced)


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
    entry = ssh("v1", "redis-cli -n 4 HGETALL 'PORT|Ethernet1'").split()
    assert dict(zip(entry[::2], entry[1::2], strict=True)) == {
        "admin_status": "up", "alias": "Ethernet1", "index": "1", "lanes": "4",
        "mtu": "9100", "speed": "100000",
    }  # fmt: skip


def test_shipped_sonic_patches_on_sonic_like_guests(make_lab, redis_port: int) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab(edit=lambda topology: topology.update(TOPOLOGY))
    _make_sonic_like(spec, redis_port)
    planned = run_cli("plan", "-S", str(spec.path), "--no-probe", "--json")
    assert planned.returncode == 0, planned.stderr
    sources = {
        node["name"]: [p["source"] for p in node["patches"]]
        for node in json.loads(planned.stdout)["nodes"]
    }
    assert sources["s1"] == [
        str(spec.path / "patches/sonic-vs/always/00-fake-sonic.json"),
        str(spec.path / "patches/sonic-vs/always/01-wait-swss.json"),
    ]
    assert sources["c1"][1:] == [
        "built-in:ciscovs/always/00-frrcfgd-mode.json",
        "built-in:ciscovs/always/01-wait-swss.json",
    ]

    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert result.returncode == 0, result.stderr
    pci = [nic.pci for nic in load_state(spec.lab).plan.node("v1").nics[1:]]
    _check_vpp(pci)

    # Cisco VS: frrcfgd's unified mode, saved, bgp restarted; then it waited for swss.
    order = [
        line for line in ssh("c1", "cat /tmp/order").splitlines() if "config-setup" not in line
    ]
    assert order == [
        "config save -y", "systemctl restart bgp", "portinit=1",
    ]  # fmt: skip
    metadata = ssh("c1", "redis-cli -n 4 HGETALL 'DEVICE_METADATA|localhost'").split()
    assert metadata == ["docker_routing_config_mode", "unified", "frr_mgmt_framework_config",
                        "true"]  # fmt: skip
    # The spec dir's file replaced the built-in wait (which would never have ended here).
    order = [
        line for line in ssh("s1", "cat /tmp/order").splitlines() if "config-setup" not in line
    ]
    assert order == ["replaced-wait", "portinit=0"]

    # Every start applies them again to the clean guest.
    assert run_cli("stop", "v1", "--grace", "0").returncode == 0
    assert run_cli("start", "v1").returncode == 0
    _check_vpp(pci)
