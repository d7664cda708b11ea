"""Virtual hosts: address derivation, profile overrides, and the script sent to the host VM."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from newtlab.errors import SpecErrors
from newtlab.image import elf
from newtlab.lab import Lab
from newtlab.plan.model import HostInterfacePlan, VirtualHostPlan
from newtlab.plan.vhost_script import login_shell, setup_script
from newtlab.plan.vhosts import AddressError, derive_address
from specfactory import write_specs

# -- derive_address ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "index", "expected"),
    [
        ("10.1.0.0/31", 0, "10.1.0.1/31"),
        ("10.1.0.1/31", 3, "10.1.0.0/31"),  # the pair decides, not the host's index
        ("10.1.0.1/30", 0, "10.1.0.2/30"),
        ("10.1.0.2/30", 5, "10.1.0.1/30"),
        ("10.1.100.1/24", 0, "10.1.100.10/24"),
        ("10.1.100.1/24", 1, "10.1.100.20/24"),
        ("10.1.100.254/24", 24, "10.1.100.250/24"),
        ("10.9.0.1/16", 2, "10.9.0.30/16"),
        ("10.1.0.1/28", 0, "10.1.0.10/28"),
        ("2001:db8::1/64", 1, "2001:db8::14/64"),
    ],
)
def test_derived_addresses(peer: str, index: int, expected: str) -> None:
    assert derive_address(peer, index) == expected


@pytest.mark.parametrize(
    ("peer", "index", "why"),
    [
        ("10.1.0.0/30", 0, "not a usable address"),  # the network address of a /30
        ("10.1.0.3/30", 0, "not a usable address"),  # its broadcast
        ("10.1.0.1/32", 0, "no address for the host"),
        ("10.1.0.1", 0, "no address for the host"),  # no prefix: nothing to derive from
        ("10.1.0.1/28", 1, "outside 10.1.0.0/28"),  # .20 is beyond .15
        ("10.1.0.10/24", 0, "the peer's own"),
        ("not-an-ip/24", 0, "not an address"),
    ],
)
def test_underivable_addresses(peer: str, index: int, why: str) -> None:
    with pytest.raises(AddressError, match=why):
        derive_address(peer, index)


def test_derived_address_may_not_be_the_broadcast() -> None:
    # /27: network + 10 × 3 = .30 is usable, + 10 × 4 = .40 is outside, .31 the broadcast.
    assert derive_address("10.0.0.1/27", 2) == "10.0.0.30/27"
    with pytest.raises(AddressError, match="outside"):
        derive_address("10.0.0.1/27", 3)


# -- the plan ------------------------------------------------------------------------

HOST = {"platform": "host"}


def _plan(tmp_path: Path, devices: dict[str, Any], profiles: dict[str, Any]) -> Any:
    return Lab.load(write_specs(tmp_path / "lab", devices, profiles=profiles)).plan


def _iface(link: str, ip: str | None = None) -> dict[str, Any]:
    return {"link": link, **({"ip": ip} if ip else {})}


def _fabric(**ips: str) -> dict[str, Any]:
    """sw with Ethernet0..3 linked to h1:eth0, h2:eth0, h3:eth0, h3:eth1 (ips by interface)."""
    sw = {
        f"Ethernet{i}": _iface(end, ips.get(f"Ethernet{i}"))
        for i, end in enumerate(["h1:eth0", "h2:eth0", "h3:eth0", "h3:eth1"])
    }
    return {
        "sw": {"interfaces": sw},
        "h1": {"interfaces": {"eth0": _iface("sw:Ethernet0")}},
        "h2": {"interfaces": {"eth0": _iface("sw:Ethernet1")}},
        "h3": {"interfaces": {"eth0": _iface("sw:Ethernet2"), "eth1": _iface("sw:Ethernet3")}},
    }


def test_hosts_derive_addresses_and_routes(tmp_path: Path) -> None:
    devices = _fabric(Ethernet0="10.0.0.0/31", Ethernet1="10.0.1.1/30", Ethernet2="10.0.2.1/24",
                      Ethernet3="10.0.3.1/24")  # fmt: skip
    plan = _plan(tmp_path, devices, {"h1": HOST, "h2": HOST, "h3": HOST, "sw": {"platform": "sw"}})
    h1, h2, h3 = plan.node("hostvm-0").vhosts
    assert (h1.name, h1.index, h1.addresses, h1.gateway) == ("h1", 0, ["10.0.0.1/31"], "10.0.0.0")
    assert (h2.addresses, h2.gateway) == (["10.0.1.2/30"], "10.0.1.1")
    # h3 is host number 3 of the VM: .30 on both wide subnets; route via its eth0's peer.
    assert [(i.name, i.nic, i.address) for i in h3.interfaces] == [
        ("eth0", 3, "10.0.2.30/24"),
        ("eth1", 4, "10.0.3.30/24"),
    ]
    assert h3.gateway == "10.0.2.1"
    macs = {n.index: n.mac for n in plan.node("hostvm-0").nics}
    assert [i.mac for i in h3.interfaces] == [macs[3], macs[4]]


def test_profile_address_and_gateway_win(tmp_path: Path) -> None:
    devices = _fabric(Ethernet0="10.0.0.0/31")
    profiles = {
        "h1": {"platform": "host", "host_ip": "192.168.5.7/24", "host_gateway": "192.168.5.1"},
        "h2": {"platform": "host", "host_ip": "10.7.0.2/24"},
        "h3": HOST,
        "sw": {"platform": "sw"},
    }
    h1, h2, h3 = _plan(tmp_path, devices, profiles).node("hostvm-0").vhosts
    assert (h1.addresses, h1.gateway) == (["192.168.5.7/24"], "192.168.5.1")
    assert (h2.addresses, h2.gateway) == (["10.7.0.2/24"], "")  # no peer ip: no route
    assert (h3.addresses, h3.gateway) == ([], "")  # neither: no address at all


def test_address_problems_are_reported_together(tmp_path: Path) -> None:
    devices = _fabric(Ethernet0="10.0.0.1/32", Ethernet1="10.0.1.3/30")
    profiles = {
        "h1": HOST,
        "h2": HOST,
        "h3": {"platform": "host", "host_ip": "10.5.0.1", "host_gateway": "nope"},
        "sw": {"platform": "sw"},
    }
    with pytest.raises(SpecErrors) as caught:
        _plan(tmp_path, devices, profiles)
    found = {(Path(e.file).name, e.path) for e in caught.value.errors}
    assert found == {
        ("topology.json", "devices.sw.interfaces.Ethernet0.ip"),
        ("topology.json", "devices.sw.interfaces.Ethernet1.ip"),
        ("h3.json", "host_ip"),
        ("h3.json", "host_gateway"),
    }
    assert 'set "host_ip" in profiles/h1.json' in str(caught.value)


def test_gateway_off_every_subnet_is_refused(tmp_path: Path) -> None:
    devices = _fabric(Ethernet0="10.0.0.0/31")
    profiles = {"h1": {"platform": "host", "host_gateway": "10.9.9.9"}, "h2": HOST, "h3": HOST,
                "sw": {"platform": "sw"}}  # fmt: skip
    with pytest.raises(SpecErrors, match=r"gateway 10\.9\.9\.9 is on none of h1's subnets"):
        _plan(tmp_path, devices, profiles)


def test_host_without_links_gets_only_lo(tmp_path: Path) -> None:
    devices = {"lonely": {"interfaces": {}}}
    plan = _plan(tmp_path, devices, {"lonely": HOST})
    (vhost,) = plan.node("hostvm-0").vhosts
    assert vhost.interfaces == [] and vhost.gateway == ""
    with pytest.raises(SpecErrors, match="no link to carry host_ip"):
        _plan(tmp_path / "b", devices, {"lonely": {"platform": "host", "host_ip": "10.0.0.2/24"}})


# -- the script ----------------------------------------------------------------------


def _host(name: str = "h1", *ifaces: HostInterfacePlan, gateway: str = "") -> VirtualHostPlan:
    return VirtualHostPlan(name=name, vm="hostvm-0", index=0, interfaces=list(ifaces),
                           gateway=gateway)  # fmt: skip


STUB = """#!/bin/sh
# Records how it was called (and, for -batch, the commands it was given).
echo "${0##*/} $*" >> /log
case " $* " in *" -batch "*) while IFS= read -r l; do echo "  $l"; done >> /log ;; esac
"""
TOOLS = ("sh", "mkdir", "sleep", "chmod", "awk", "mv")  # what the script runs, besides stubs
LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64")


def _copy_with_libraries(program: Path, root: Path, as_name: str) -> None:
    """Copy ``program`` to root/bin/as_name, and the libraries it needs to their places."""
    todo, seen = [(program.resolve(), f"bin/{as_name}")], set()
    while todo:
        source, dest = todo.pop()
        if dest in seen:
            continue
        seen.add(dest)
        (root / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, root / dest)
        info = elf.read(source)
        for lib in info.needed if info else ():
            found = next(Path(d) / lib for d in LIB_DIRS if (Path(d) / lib).exists())
            todo.append((found.resolve(), f"lib/{lib}"))
        if info and info.interpreter:
            todo.append((Path(info.interpreter).resolve(), info.interpreter.lstrip("/")))


def _run_in_sandbox(tmp_path: Path, script: str) -> tuple[list[str], str]:
    """Run the script as root, chrooted into a tiny root with stub ip/unshare/umount.

    The root holds copies of the few tools the script runs, a fake
    /sys/class/net with four NICs, and /etc files to edit: nothing of this
    machine is touched, and no mount is needed (so it works in a chroot too).
    """
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    root = tmp_path / "root"
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run the script"
        _copy_with_libraries(Path(found), root, tool)
    for stub in ("ip", "unshare", "umount"):
        (root / "bin" / stub).write_text(STUB)
        (root / "bin" / stub).chmod(0o755)
    for n in range(4):
        nic = root / "sys" / "class" / "net" / f"eth{n}"
        nic.mkdir(parents=True)
        (nic / "address").write_text(f"52:54:00:00:00:0{n}\n")
    etc = root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nh1:x:0:0:old:/x:/bin/sh\n")
    (etc / "shadow").write_text("root:$6$salt$hash:19000:0:99999:7:::\n")
    (etc / "shells").write_text("/bin/sh\n")
    for directory in ("run", "home", "tmp", "dev"):
        (root / directory).mkdir()
    (root / "dev" / "null").write_text("")  # a plain file takes what is thrown away
    (root / "log").write_text("")
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    subprocess.run([chroot, str(root), "/bin/sh", "-s"], input=script, env={"PATH": "/bin"},
                   check=True, capture_output=True, text=True)  # fmt: skip
    names = ("etc/passwd", "etc/shadow", "etc/shells", "etc/newtlab/hosts/h1.sh",
             "home/h2/.ssh/authorized_keys")  # fmt: skip
    files = "".join((root / n).read_text() for n in names if (root / n).exists())
    return (root / "log").read_text().splitlines(), files


def test_script_commands_and_logins(tmp_path: Path) -> None:
    eth0 = HostInterfacePlan(name="eth0", nic=2, mac="52:54:00:00:00:02", address="10.0.0.1/31",
                             peer="10.0.0.0")  # fmt: skip
    eth1 = HostInterfacePlan(name="eth1", nic=3, mac="52:54:00:00:00:03")
    hosts = [_host("h1", eth0, eth1, gateway="10.0.0.0"), _host("h2")]
    calls, files = _run_in_sandbox(tmp_path, setup_script(hosts, "root", "ssh-ed25519 AA k"))
    assert calls == [
        "ip netns list",
        "ip -force -batch -", "  netns delete h1", "  netns delete h2",
        "ip -batch -", "  netns add h1", "  netns add h2",
        "umount /run/newtlab/uts/h1 /run/newtlab/uts/h2",
        "unshare --uts=/run/newtlab/uts/h1 hostname h1",
        "unshare --uts=/run/newtlab/uts/h2 hostname h2",
        # NICs found by MAC (eth2, eth3 in the VM), moved, renamed to the host's names.
        "ip -batch -", "  link set dev eth2 netns h1", "  link set dev eth3 netns h1",
        "ip -n h1 -batch -", "  link set lo up",
        "  link set dev eth2 name eth0", "  link set dev eth0 up",
        "  addr add 10.0.0.1/31 dev eth0",
        "  link set dev eth3 name eth1", "  link set dev eth1 up",
        "  route add default via 10.0.0.0",
        "ip -n h2 -batch -", "  link set lo up",  # no links: only lo
    ]  # fmt: skip
    assert files.splitlines()[:3] == [
        "root:x:0:0:root:/root:/bin/sh",  # h1's old line replaced, root kept
        "h1:x:0:0:virtual host h1:/home/h1:/etc/newtlab/hosts/h1.sh",
        "h2:x:0:0:virtual host h2:/home/h2:/etc/newtlab/hosts/h2.sh",
    ]
    assert "h2:$6$salt$hash:19000:0:99999:7:::" in files  # root's password hash
    assert "/bin/sh\n/etc/newtlab/hosts/h1.sh\n/etc/newtlab/hosts/h2.sh\n" in files
    assert login_shell("h1") in files
    assert files.endswith("ssh-ed25519 AA k\n")


def test_script_is_rerunnable_in_the_sandbox(tmp_path: Path) -> None:
    eth0 = HostInterfacePlan(name="eth0", nic=1, mac="52:54:00:00:00:01")
    script = setup_script([_host("h1", eth0)], "root", "")
    twice = script + script.split("\n", 1)[1]  # the same script again, in one run
    calls, files = _run_in_sandbox(tmp_path, twice)
    assert calls.count("  netns add h1") == 2
    # One passwd line and one /etc/shells line, however often it runs.
    assert files.count("virtual host h1") == 1 and files.count("/etc/newtlab/hosts/h1.sh\n") == 2


def test_missing_nic_fails_the_script(tmp_path: Path) -> None:
    gone = HostInterfacePlan(name="eth0", nic=1, mac="52:54:00:00:00:99")
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _run_in_sandbox(tmp_path, setup_script([_host("h1", gone)], "root", ""))
    assert "no NIC with MAC 52:54:00:00:00:99" in failed.value.stderr


def _unquoted(script: str) -> str:
    """The script's text outside single quotes, double quotes and comments."""
    out, quote, comment, prev = [], "", False, "\n"
    for ch in script:
        if comment:
            comment = ch != "\n"
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and prev in " \t\n;":
            comment = True
        else:
            out.append(ch)
        prev = ch
    return "".join(out)


def test_script_quotes_every_name() -> None:
    odd = "h'1 $(x)"
    script = setup_script([_host(odd)], "ro ot", "")
    assert f"printf '%s\\n' {shlex.quote('netns add ' + odd)} | ip -batch -" in script
    assert "-v u='ro ot'" in script
    # Outside quotes and comments, the name's $(x) never reaches the shell.
    assert "$(x)" not in _unquoted(script)


def test_script_is_valid_sh() -> None:
    eth0 = HostInterfacePlan(name="eth0", nic=1, mac="52:54:00:00:00:01", address="10.0.0.1/31")
    script = setup_script([_host("h1", eth0), _host("h2")], "root", "ssh-ed25519 AA k")
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    subprocess.run(["sh", "-n"], input=login_shell("h1"), text=True, check=True)
