"""A lab is its owner's: another user of the machine reaches none of its consoles or NICs.

Consoles, VM NICs and the bridge's sockets are Unix sockets in the lab's
directory (mode 0700); of the lab only the VMs' SSH forwards listen on TCP
(they need the lab's key or password). The test makes
every directory above that one passable for everyone, so only the lab
directory's own mode keeps the second user out; a socket in a passable
directory, reached by the same user the same way, shows the check can fail.
The second user is created by the test and removed after it.
"""

from __future__ import annotations

import json
import pwd
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import SpecDir, two_routers

import labprocs
from otheruser import other_user, probe_argv, reached
from specfactory import run_cli


@pytest.fixture(scope="module")
def other() -> Iterator[pwd.struct_passwd]:
    with other_user() as user:
        yield user


@pytest.fixture
def passable(newtlab_home: Path) -> Iterator[Callable[[Path], None]]:
    """Make every directory from ``/`` down to a path's parent (not the path itself)
    enterable by anyone, until the test ends."""
    changed: dict[Path, int] = {}

    def open_up(path: Path) -> None:
        for directory in path.parents:
            mode = directory.stat().st_mode & 0o777
            if not mode & 0o001:
                changed.setdefault(directory, mode)
                directory.chmod(mode | 0o001)

    yield open_up
    for directory, mode in changed.items():
        directory.chmod(mode)


def console_with(node: str, typed: str) -> subprocess.CompletedProcess[str]:
    """``newtlab console NODE`` with ``typed`` as its stdin (no terminal)."""
    argv = [sys.executable, "-m", "newtlab", "console", node]
    return subprocess.run(argv, input=typed, capture_output=True, text=True, timeout=60)


def tcp_listeners(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket those processes listen on."""
    found = set()
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            address, _, port = line.split()[3].rpartition(":")
            found.add((address.strip("[]"), int(port)))
    return found


def test_another_user_reaches_no_console_of_the_lab(
    make_lab: Callable[..., SpecDir],
    newtlab_home: Path,
    other: pwd.struct_passwd,
    passable: Callable[[Path], None],
) -> None:
    spec = make_lab(edit=two_routers)  # a third VM would show nothing more
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert result.returncode == 0, result.stderr
    lab_dir = newtlab_home / "labs" / spec.lab
    consoles = sorted(lab_dir.glob("qemu/*.console"))
    assert [c.name for c in consoles] == ["r1.console", "r2.console"]
    assert (lab_dir.stat().st_mode & 0o777) == 0o700
    passable(lab_dir)  # every directory above the lab's own is enterable now
    sockets = [p for p in lab_dir.rglob("*") if p.is_socket()]
    assert {p.suffix for p in sockets} >= {".console", ".qmp", ".nic1", ".sock"}

    # The other user reaches a socket in a passable directory, and none of the lab's.
    probe = subprocess.run(probe_argv(other, [str(p) for p in sockets]), capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    answers = reached(probe.stdout)
    assert answers.pop("control", "") == "connected", probe.stdout + probe.stderr
    assert len(answers) == len(sockets) and set(answers.values()) == {"PermissionError"}

    # Of the lab's processes only the VMs' SSH forwards listen on TCP.
    nodes = json.loads(run_cli("status", "--json").stdout)["nodes"]
    ssh_ports = {n["name"]: n["ssh_port"] for n in nodes}
    # status names each console and NIC endpoint, as plan does
    assert [(n["console"], n["nic_sockets"]) for n in nodes] == [
        ("qemu/r1.console", {"eth1": "qemu/r1.nic1"}),
        ("qemu/r2.console", {"eth1": "qemu/r2.nic1"}),
    ]
    vms = labprocs.vms(spec.lab)
    bridge = set(labprocs.home_labs()[spec.lab]) - set(vms)
    assert bridge and tcp_listeners(bridge) == set()
    for pid, node in vms.items():
        assert tcp_listeners({pid}) == {("127.0.0.1", ssh_ports[node])}, node

    # The owner's console works as before, and the profile names no console port.
    console = console_with("r1", "echo hi-$((6*7))\n")
    assert console.returncode == 0 and "hi-42" in console.stdout, console.stderr
    assert "console_port" not in json.loads((spec.path / "profiles" / "r1.json").read_text())


def test_tcp_consoles_when_the_lab_asks_for_them(
    make_lab: Callable[..., SpecDir], newtlab_home: Path
) -> None:
    def tcp_consoles(topology: dict[str, Any]) -> None:
        two_routers(topology)
        topology["newtlab"].update(console="tcp")

    spec = make_lab(edit=tcp_consoles)
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg")
    assert result.returncode == 0, result.stderr
    first = spec.ports["console_port_base"]
    pids = set(labprocs.vms(spec.lab))
    assert {("127.0.0.1", first + i) for i in range(2)} <= tcp_listeners(pids)
    assert not list((newtlab_home / "labs" / spec.lab).glob("qemu/*.console"))
    profile = json.loads((spec.path / "profiles" / "r2.json").read_text())
    assert profile["console_port"] == first + 1
    nodes = json.loads(run_cli("status", "--json").stdout)["nodes"]
    assert [n["console"] for n in nodes] == [f"127.0.0.1:{first + i}" for i in range(2)]
    console = console_with("r2", "echo hi-$((6*7))\n")
    assert console.returncode == 0 and "hi-42" in console.stdout, console.stderr
    assert f"console of r2 on port {first + 1}" in console.stderr
