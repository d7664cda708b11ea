"""The ``Host`` contract fixtures: a host over each transport, and small labs placed on it.

Tests talk to a host only through the ``Host`` interface and its engine and
datapath (even to make their base image and to kill a process), so the same
tests run over every transport: ``local`` (this machine) and ``ssh`` (a
server in a network namespace with its own sshd, private /tmp and
~/.newtlab; see testservers).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostkit import HostLab, run

from newtlab.lab import Lab
from newtlab.plan.model import HostPlan
from newtlab.runtime.host import Host
from newtlab.runtime.hosts import host_for, local_host
from newtlab.runtime.transports.remote import SshTransport
from specfactory import linked, write_specs
from testservers import TestServer, servers

_labs = itertools.count()


@pytest.fixture(scope="session")
def test_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    with servers(1, tmp_path_factory.mktemp("servers")) as (server,):
        yield server


@pytest.fixture(params=["local", "ssh"])
def host(request: pytest.FixtureRequest, _isolated_home: Path) -> Iterator[Host]:
    if request.param == "local":
        yield local_host()
        return
    server: TestServer = request.getfixturevalue("test_server")
    plan = HostPlan(
        name=server.name,
        address=server.address,
        ip=server.address,
        user=server.user,
        ssh_port=server.ssh_port,
        identity_file=str(server.identity_file),
    )
    remote = host_for(run(SshTransport.open(plan, _isolated_home / "known_hosts")))
    yield remote
    run(remote.close())


async def _clean(host: Host, lab: str) -> None:
    for process in await host.engine.processes(lab):
        await host.engine.stop(lab, process.node, process.pid, 0)
    await host.datapath.stop(lab)
    await host.remove_lab(lab)


@pytest.fixture
def make_lab(host: Host, tmp_path: Path) -> Iterator[Callable[..., HostLab]]:
    """``make_lab(extra_devices=[...])``: plan a lab on ``host``, its base image made there.

    Every process of every lab made here is stopped in the finalizer, pass or fail.
    """
    made: list[HostLab] = []
    bases: list[str] = []

    def make(**platform: Any) -> HostLab:
        name = f"contract{next(_labs)}-{uuid.uuid4().hex[:6]}"
        base = f"/tmp/newtlab-{name}.qcow2"  # a host path: /tmp exists on every host
        result = run(host.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "16M"]))
        assert result.returncode == 0, result.output
        bases.append(base)
        platforms = {"vm": {"vm_image": base, "vm_memory": 128, "vm_cpus": 1,
                            "vm_interface_map": "linux", **platform}}  # fmt: skip
        spec = write_specs(
            tmp_path / name,
            linked(("a:eth1", "b:eth1")),
            platforms=platforms,
            default_platform="vm",
            newtlab=_ports(),
        )
        lab = HostLab(host, Lab.load(spec, name=name, accel="tcg").plan, base)
        run(host.prepare_lab(lab.name))
        made.append(lab)
        return lab

    yield make
    problems = []
    for lab in made:  # every lab is cleaned, even if one cleanup fails
        try:
            run(_clean(host, lab.name))
            left = run(host.processes(lab.name))
        except Exception as exc:
            problems.append(f"{lab.name}: cleanup failed: {exc!r}")
            continue
        if left:
            problems.append(f"{lab.name} left processes behind: {left}")
    for base in bases:
        run(host.run(["rm", "-f", base]))
    assert not problems, problems


def _ports() -> dict[str, int]:
    """A port block of its own for each lab (the bridge's stats port sits just below)."""
    block = 32000 + (next(_port_blocks) % 50) * 20
    return {"link_port_base": block + 1, "console_port_base": block + 10,
            "ssh_port_base": block + 15}  # fmt: skip


_port_blocks = itertools.count()
