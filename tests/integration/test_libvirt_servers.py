"""A server of the pool with the libvirt engine, reached over qemu+ssh:// (OpenSSH, with the
pool's key and newtlab's own record of its host key), beside a server running plain QEMU:
examples/line3 without r3, r1 a domain on s1 and r2 a QEMU of s2's, their link across.
(Links between domains of one daemon: test_libvirt.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import SpecDir, run_cli, ssh, status, two_routers

from libvirtd import start_in_server
from testservers import TestServer, servers

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[list[TestServer]]:
    with servers(2, tmp_path / "servers") as found:
        start_in_server(found[0])
        yield found


def domains(server: TestServer) -> list[str]:
    listed = server.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"])
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def test_a_libvirt_server_beside_a_qemu_server(make_lab, pool: list[TestServer]) -> None:  # type: ignore[no-untyped-def]
    s1, s2 = pool

    def edit(topology: dict[str, Any]) -> None:
        two_routers(topology)
        topology["newtlab"]["servers"] = [
            {"name": s.name, "address": s.address, "user": s.user,
             "identity_file": str(s.identity_file), "engine": engine}
            for s, engine in ((s1, "libvirt"), (s2, "qemu"))
        ]  # fmt: skip

    spec: SpecDir = make_lab(edit=edit, configs=True)  # each router addresses its links
    (spec.path / "configs" / "r3.cfg").unlink()  # no r3
    for node, server in (("r1", "s1"), ("r2", "s2")):
        path = spec.path / "profiles" / f"{node}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "vm_host": server}))
    planned = json.loads(run_cli("plan", "-S", str(spec.path), "--no-probe", "--json").stdout)
    engines = {node["name"]: (node["host"], node["engine"]) for node in planned["nodes"]}
    assert engines == {"r1": ("s1", "libvirt"), "r2": ("s2", "qemu")}
    deployed = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", timeout=600)
    assert deployed.returncode == 0, deployed.stderr
    assert [name.rsplit("-", 1)[1] for name in domains(s1)] == ["r1"]
    assert "newtlab:" in s2.run(["ps", "-eo", "args="]).stdout  # r2: QEMU newtlab started
    assert {n["name"]: n["status"] for n in status()["nodes"]} == dict.fromkeys(
        ("r1", "r2"), "running"
    )
    ssh("r1", "ping -c 3 -W 2 10.0.12.2 || ping -c 3 -W 2 10.0.12.2")  # s1's domain to s2's QEMU
    (r1,) = [name for name in domains(s1) if name.endswith("-r1")]
    logged = run_cli("logs", "r1", "--qemu")  # libvirt's log on s1, read by the agent there
    assert logged.returncode == 0 and f"-name guest={r1}," in logged.stdout, logged.stderr
    assert run_cli("destroy", spec.lab).returncode == 0
    assert domains(s1) == []
    assert "newtlab-" not in s1.run(["virsh", "-c", "qemu:///system", "pool-list", "--all"]).stdout
