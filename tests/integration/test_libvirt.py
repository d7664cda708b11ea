"""The libvirt engine on real domains: examples/line3 deployed with ``--engine libvirt`` on
a private libvirtd this test starts (``tests/libvirtd.py``), shared by the checks below.

SSH to every node and pings on every link; the defined domains carry what newtlab set
(name, metadata, MACs, PCI addresses, link ports); ``logs --qemu`` reads libvirt's log of
the domain; stop/start of r2 leaves its neighbours' domains untouched; a domain destroyed
with ``virsh destroy`` is shown exited and brought back by ``repair``; a pulled cable goes
through libvirt; the bridge killed is healed; destroy leaves no domain, pool or process, and
a lab of another home with the same name is left alone. hosts2 on domains: its virtual
hosts answer, and once its state is lost, prune finds its domains and destroy removes them.
A snapshot goes through libvirt's own API and comes back in place, or from the store for a
domain that was stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from labkit import EXAMPLE, SpecDir, close_ssh, run_cli, ssh, status, wait_for

from libvirtd import Libvirtd, private_libvirtd
from newtlab.state import load_state, state_path

pytestmark = pytest.mark.integration


def virsh(uri: str, *args: str) -> str:
    done = subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"virsh {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Libvirtd]:
    with private_libvirtd(tmp_path_factory.mktemp("libvirt")) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def libvirt_uri(libvirtd: Libvirtd) -> str:
    return libvirtd.uri


@pytest.fixture(scope="module")
def deployed(make_shared_lab: Callable[..., SpecDir], libvirt_uri: str) -> SpecDir:
    def on_libvirt(topology: dict[str, Any]) -> None:
        topology["newtlab"].update(engine="libvirt", libvirt_uri=libvirt_uri)

    spec = make_shared_lab(edit=on_libvirt, configs=True)  # each router addresses its links
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", timeout=600)
    assert result.returncode == 0, result.stderr
    return spec


@pytest.fixture
def lab(deployed: SpecDir, in_module_home: Path) -> SpecDir:
    return deployed


def domains(uri: str) -> dict[str, str]:
    """Name → state of every domain the daemon has."""
    listed = virsh(uri, "list", "--all").splitlines()[2:]
    return {words[1]: " ".join(words[2:]) for words in map(str.split, listed) if words}


def domain_qemus() -> list[int]:
    """PIDs of every QEMU libvirt runs for a newtlab domain on this machine."""
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any(a.startswith("guest=newtlab-") for a in p.info["cmdline"] or [])
    ]


def test_a_lab_of_domains_answers_and_forwards(lab: SpecDir, libvirt_uri: str) -> None:
    for node in ("r1", "r2", "r3"):
        assert ssh(node, "hostname").strip() == node
    ssh("r1", "ping -c 3 -W 2 10.0.12.2 || ping -c 3 -W 2 10.0.12.2")
    ssh("r2", "ping -c 3 -W 2 10.0.23.3 || ping -c 3 -W 2 10.0.23.3")
    plan = load_state(lab.lab).plan
    running = domains(libvirt_uri)
    assert len(running) == 3 and set(running.values()) == {"running"}
    for node in plan.nodes:
        (name,) = [n for n in running if n.endswith(f"-{lab.lab}-{node.name}")]
        root = ET.fromstring(virsh(libvirt_uri, "dumpxml", name))
        interfaces = {i.find("mac").get("address"): i for i in root.iterfind("devices/interface")}
        for nic in node.nics[1:]:
            interface = interfaces[nic.mac]
            address = interface.find("address")
            assert (
                f"0000:{int(address.get('bus'), 16):02x}:{int(address.get('slot'), 16):02x}.0"
                == nic.pci
            )
            assert f"127.0.0.1:{interface.find('source').get('port')}" == nic.listen
        assert root.find("title").text == f"newtlab lab {lab.lab}, node {node.name}"


def test_logs_of_a_domain_are_libvirts(lab: SpecDir, libvirtd: Libvirtd) -> None:
    # libvirt keeps the domain's log in its own /var/log/libvirt: here the private daemon's.
    argv = libvirtd.inside([sys.executable, "-m", "newtlab", "logs", "r1", "--qemu"])
    shown = subprocess.run(argv, capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    assert shown.returncode == 0, shown.stderr
    (r1,) = [n for n in domains(libvirtd.uri) if n.endswith("-r1")]
    assert f"-name guest={r1}," in shown.stdout  # the command line libvirt ran
    outside = run_cli("logs", "r1", "--qemu")  # not this daemon's /var/log/libvirt
    assert outside.returncode == 1 and "no log yet for r1" in outside.stderr


def test_stop_start_virsh_destroy_and_repair(lab: SpecDir, libvirt_uri: str) -> None:
    before = {n["name"]: n["pid"] for n in status()["nodes"]}
    assert run_cli("stop", "r2", "--grace", "0").returncode == 0
    assert [s for n, s in domains(libvirt_uri).items() if n.endswith("-r2")] == ["shut off"]
    started = run_cli("start", "r2", timeout=300)
    assert started.returncode == 0, started.stderr
    after = {n["name"]: n["pid"] for n in status()["nodes"]}
    assert (after["r1"], after["r3"]) == (before["r1"], before["r3"])
    ssh("r1", "ping -c 3 -W 2 10.0.12.2 || ping -c 3 -W 2 10.0.12.2")

    (r3,) = [n for n in domains(libvirt_uri) if n.endswith("-r3")]
    virsh(libvirt_uri, "destroy", r3)
    wait_for(lambda: {n["name"]: n["status"] for n in status()["nodes"]}["r3"] == "exited")
    repaired = run_cli("repair", lab.lab, timeout=300)
    assert repaired.returncode == 0, repaired.stderr
    assert "r3: its QEMU had exited: started again, ready" in repaired.stdout
    ssh("r2", "ping -c 3 -W 2 10.0.23.3 || ping -c 3 -W 2 10.0.23.3")


def test_a_cable_pulled_through_libvirt(lab: SpecDir, libvirt_uri: str) -> None:
    assert run_cli("link", "down", "r2:eth2").returncode == 0
    assert ssh("r2", "cat /sys/class/net/eth2/carrier").strip() == "0"
    (r2,) = [n for n in domains(libvirt_uri) if n.endswith("-r2")]
    states = virsh(
        libvirt_uri, "domif-getlink", r2, load_state(lab.lab).plan.node("r2").nics[2].mac
    )
    assert "down" in states
    assert run_cli("link", "up", "r2:eth2").returncode == 0
    assert ssh("r2", "cat /sys/class/net/eth2/carrier").strip() == "1"


def test_the_bridge_killed_heals_between_domains(lab: SpecDir) -> None:
    # The domains listen for their links (type='server'); a new bridge dials them again.
    (bridge,) = status()["bridges"]
    os.kill(bridge["bridge_pid"], signal.SIGKILL)
    wait_for(lambda: status()["bridges"][0]["restarts"] == bridge["restarts"] + 1)
    wait_for(lambda: all(link["connected"] for link in status()["links"]))
    ssh("r2", "ping -c 3 -W 2 10.0.12.1 || ping -c 3 -W 2 10.0.12.1")
    ssh("r2", "ping -c 3 -W 2 10.0.23.3 || ping -c 3 -W 2 10.0.23.3")


def test_a_snapshot_of_domains_through_libvirts_api(lab: SpecDir, libvirt_uri: str) -> None:
    """Saved by libvirt (internal, the config drive left out), reverted by libvirt where the
    domain runs; a stopped domain is defined again from the store's record of it."""
    ssh("r1", "echo saved > /root/marker")
    saved = run_cli("snapshot", "save", "s1", "--json")
    assert saved.returncode == 0, saved.stderr
    (r1,) = [n for n in domains(libvirt_uri) if n.endswith("-r1")]
    assert virsh(libvirt_uri, "snapshot-list", r1, "--name").split() == ["s1"]
    assert json.loads(saved.stdout)["vms"] == ["r1", "r2", "r3"]
    before = {n["name"]: n["pid"] for n in status()["nodes"]}
    ssh("r1", "echo changed > /root/marker")
    assert run_cli("stop", "r3", "--grace", "0").returncode == 0
    restored = run_cli("snapshot", "restore", "s1", timeout=300)
    assert restored.returncode == 0, restored.stderr
    close_ssh()
    after = {n["name"]: (n["pid"], n["status"]) for n in status()["nodes"]}
    assert {state for _, state in after.values()} == {"running"}
    assert after["r3"][0] != before["r3"]  # re-created from the store
    assert ssh("r1", "cat /root/marker").strip() == "saved"
    ssh("r2", "ping -c 3 -W 2 10.0.23.3 || ping -c 3 -W 2 10.0.23.3")
    ssh("r2", "ping -c 3 -W 2 10.0.12.1 || ping -c 3 -W 2 10.0.12.1")
    assert run_cli("snapshot", "delete", "s1").returncode == 0
    assert virsh(libvirt_uri, "snapshot-list", r1, "--name").split() == []


def _another_homes(uri: str, name: str, tmp_path: Path) -> str:
    """A domain as another home's lab of the same name would define it (its own home id
    in the name and the metadata), defined and left shut off; its name."""
    root = ET.fromstring(virsh(uri, "dumpxml", "--inactive", name))
    root.remove(root.find("uuid"))  # its own
    mark = next(e for e in root.find("metadata") if e.tag.endswith("}node"))
    home = mark.get("home", "")
    other = "f" * len(home)
    mark.set("home", other)
    root.find("name").text = name.replace(home, other)
    path = tmp_path / "other.xml"
    path.write_text(ET.tostring(root, encoding="unicode"))
    virsh(uri, "define", str(path))
    return name.replace(home, other)


def test_destroy_leaves_no_domain_and_another_homes_alone(
    lab: SpecDir, libvirt_uri: str, tmp_path: Path
) -> None:
    (r1,) = [n for n in domains(libvirt_uri) if n.endswith("-r1")]
    other = _another_homes(libvirt_uri, r1, tmp_path)
    destroyed = run_cli("destroy", lab.lab)
    assert destroyed.returncode == 0, destroyed.stderr
    assert domains(libvirt_uri) == {other: "shut off"}
    assert "newtlab-" not in virsh(libvirt_uri, "pool-list", "--all")
    assert domain_qemus() == []
    virsh(libvirt_uri, "undefine", other)


def test_virtual_hosts_on_libvirt(
    make_shared_lab: Callable[..., SpecDir], libvirt_uri: str, in_module_home: Path
) -> None:
    def on_libvirt(topology: dict[str, Any]) -> None:
        topology["newtlab"].update(engine="libvirt", libvirt_uri=libvirt_uri)

    spec = make_shared_lab(EXAMPLE.parent / "hosts2", edit=on_libvirt, configs=True)
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", timeout=600)
    assert result.returncode == 0, result.stderr
    vhosts = {v["name"]: v for v in status()["vhosts"]}
    peer = vhosts["host2"]["addresses"][0].split("/")[0]
    ssh("host1", f"ping -c 3 -W 2 {peer} || ping -c 3 -W 2 {peer}")  # across r1

    # Its state lost, its domains are still found: by prune, and by destroy.
    state_path(spec.lab).unlink()
    pruned = json.loads(run_cli("prune", "--json").stdout)
    (orphan,) = pruned["orphans"]
    assert (orphan["lab"], orphan["kind"]) == (spec.lab, "processes")
    destroyed = run_cli("destroy", spec.lab)
    assert destroyed.returncode == 0, destroyed.stderr
    assert domains(libvirt_uri) == {}
    assert "newtlab-" not in virsh(libvirt_uri, "pool-list", "--all")
    assert domain_qemus() == []
