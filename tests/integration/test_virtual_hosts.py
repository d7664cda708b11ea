"""newtron's 2node-ngdp with real virtual hosts: six hosts in one host VM, two Linux routers.

The hosts keep newtron's own ``alpine-host`` platform (its image name points
at newtlab's host image), but for its boot timeout: newtron's 60 s is too short
for a TCG guest booting beside other tests' guests. The switches are played by Linux
routers on the same image. Every host must sit in its own namespaces with
its own address, reach its gateway and hosts behind the other switch, and
come back whole after its host VM is stopped and started.
"""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from labkit import SpecDir, run_cli, ssh, status

import labprocs
from newtlab.agent import procs
from newtlab.image import host_platform

pytestmark = pytest.mark.integration

SPECS = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "2node-ngdp" / "specs"
SWITCH_IPS = {
    "switch1": {"Ethernet0": "10.0.0.0/31", "Ethernet1": "10.1.1.0/31",
                "Ethernet2": "10.1.2.1/30", "Ethernet3": "10.1.3.1/24"},
    "switch2": {"Ethernet0": "10.0.0.1/31", "Ethernet1": "10.2.4.1/24",
                "Ethernet2": "10.2.5.1/31", "Ethernet3": "10.2.6.1/24"},
}  # fmt: skip
ROUTES = {"switch1": "10.2.0.0/16 via 10.0.0.1", "switch2": "10.1.0.0/16 via 10.0.0.0"}
# host -> (address, gateway): /31, /30 and /24 derived; host4 set by its profile.
HOSTS = {
    "host1": ("10.1.1.1/31", "10.1.1.0"),
    "host2": ("10.1.2.2/30", "10.1.2.1"),
    "host3": ("10.1.3.30/24", "10.1.3.1"),
    "host4": ("10.2.4.5/24", "10.2.4.1"),
    "host5": ("10.2.5.0/31", "10.2.5.1"),
    "host6": ("10.2.6.60/24", "10.2.6.1"),
}


def exec_(node: str, *argv: str, timeout: float = 60) -> str:
    """Exactly ``argv`` on ``node``, as ``newtlab exec`` runs it; it must succeed; its output."""
    return ssh(node, list(argv), timeout)


def _edit_topology(topology: dict[str, Any]) -> None:
    for switch, ips in SWITCH_IPS.items():
        for iface, ip in ips.items():
            topology["devices"][switch]["interfaces"][iface]["ip"] = ip


def _prepare(spec: SpecDir) -> None:
    platforms_path = spec.path / "platforms.json"
    platforms = json.loads(platforms_path.read_text())
    host = host_platform()
    router = {**host, "vm_interface_map": "sequential", "vm_memory": 128}
    platforms["platforms"]["sonic-ciscovs"] = router  # switches: Linux routers, EthernetN = ethN+1
    platforms["platforms"]["alpine-host"]["vm_boot_timeout"] = host["vm_boot_timeout"]
    platforms_path.write_text(json.dumps(platforms, indent=2))
    host4 = spec.path / "profiles" / "host4.json"
    profile = json.loads(host4.read_text())
    profile.update(host_ip="10.2.4.5/24", host_gateway="10.2.4.1")
    host4.write_text(json.dumps(profile, indent=4))


def configure_switches() -> None:
    for switch, ips in SWITCH_IPS.items():
        commands = [f"ip addr add {ip} dev eth{int(i[8:]) + 1}" for i, ip in ips.items()]
        commands += [f"ip route add {ROUTES[switch]}", "sysctl -w net.ipv4.ip_forward=1"]
        exec_(switch, "sh", "-c", " && ".join(commands))


def ping(host: str, address: str) -> None:
    # The first replies may be lost while links settle: allow a second try.
    exec_(host, "sh", "-c", f"ping -c 2 -W 2 {address} || ping -c 3 -W 2 {address}")


def _check_host(host: str) -> None:
    """One login: the host's links, name, address and routes, then a ping of its gateway."""
    address, gateway = HOSTS[host]
    probe = (
        "ip -o link; echo @; hostname; echo @; ip -o -4 addr show dev eth0; echo @; ip route;"
        f" ping -c 2 -W 2 {gateway} >/dev/null || ping -c 3 -W 2 {gateway} >/dev/null"
    )
    links, name, addr, routes = exec_(host, "sh", "-c", probe).split("@\n")
    assert sorted(re.findall(r"^\d+: ([^:@]+)", links, re.M)) == ["eth0", "lo"], (host, links)
    assert name.strip() == host
    assert f"inet {address} " in addr, (host, addr)
    assert f"default via {gateway} dev eth0" in routes, (host, routes)


def check_hosts() -> None:
    """Every host checked, then two pings across both switches. The first alone: its login
    is the connection the others share (dropbear lets only five logins from one address
    be authenticating at once, and through QEMU's user network all come from one); then
    the rest at once, each waiting on its pings, not the CPU."""
    first, *others = HOSTS
    _check_host(first)
    with ThreadPoolExecutor(len(others)) as pool:
        list(pool.map(_check_host, others))  # re-raises the first failure
        crossing = [pool.submit(ping, "host1", "10.2.4.5"), pool.submit(ping, "host5", "10.1.3.30")]
        for done in crossing:
            done.result()


async def _password_login(port: int, user: str, password: str) -> str:
    async with asyncssh.connect(
        "127.0.0.1", port, username=user, password=password, client_keys=[], agent_path=None,
        known_hosts=None, server_host_key_algs=["ssh-ed25519"],
    ) as conn:  # fmt: skip
        return str((await conn.run("hostname", check=True)).stdout).strip()


def test_2node_virtual_hosts(make_lab, newtlab_home: Path) -> None:  # type: ignore[no-untyped-def]
    images = newtlab_home / "images"
    # newtron's alpine-host platform names this image; newtlab's host image plays it.
    (images / "alpine-testhost.qcow2").symlink_to((images / "newtlab-host.qcow2").resolve())
    spec: SpecDir = make_lab(SPECS, edit=_edit_topology)
    _prepare(spec)
    profiles_before = spec.profiles()

    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    configure_switches()
    check_hosts()

    # Throughput between hosts behind different switches.
    exec_("host6", "iperf3", "-s", "-1", "-D")
    report = exec_("host1", "iperf3", "-c", "10.2.6.60", "-t", "2", timeout=120)
    rate = re.search(r"([\d.]+) ([KMG]?)bits/sec.*receiver", report)
    assert rate and float(rate.group(1)) > 0, report
    print(f"\niperf3 host1 -> host6 across two routers (TCG): {rate.group(1)} {rate.group(2)}bit/s")

    # A plain SSH client lands in the host; its password is the VM's (vm_credentials).
    data = status()
    row = next(v for v in data["vhosts"] if v["name"] == "host1")
    assert (row["id"], row["vm"], row["namespace"]) == ("vhost:hostvm-0/host1", "hostvm-0", "host1")
    assert row["addresses"] == ["10.1.1.1/31"] and row["gateway"] == "10.1.1.0"
    hostvm = next(n for n in data["nodes"] if n["name"] == "hostvm-0")
    assert (row["pid"], row["ssh_port"]) == (hostvm["pid"], hostvm["ssh_port"])
    assert asyncio.run(_password_login(row["ssh_port"], "host3", "root")) == "host3"
    # exec runs exactly the argv it is given; ssh lets the remote shell read the words.
    quoted = run_cli("exec", "host2", "--", "sh", "-c", 'echo "$1|$2"', "x", "a b", "$HOME")
    assert quoted.returncode == 0 and quoted.stdout.strip() == "a b|$HOME", quoted.stderr
    assert run_cli("exec", "host2", "--", "sh", "-c", "exit 7").returncode == 7
    assert run_cli("ssh", "host2", "--", "echo", "$0").stdout.strip() != "$0"

    refused = run_cli("stop", "host1")
    assert refused.returncode != 0
    assert "host1 is a virtual host inside hostvm-0" in refused.stderr
    assert "newtlab stop hostvm-0" in refused.stderr

    # The host VM stopped and started: every host is made again.
    assert run_cli("stop", "hostvm-0", "--grace", "0").returncode == 0
    started = run_cli("start", "hostvm-0", timeout=300)
    assert started.returncode == 0, started.stderr
    check_hosts()

    assert run_cli("destroy", spec.lab).returncode == 0
    assert labprocs.vms(spec.lab) == {} and procs.find(procs.bridge_tag(spec.lab)) == []
    assert not (newtlab_home / "labs" / spec.lab).exists()
    assert spec.profiles() == profiles_before
