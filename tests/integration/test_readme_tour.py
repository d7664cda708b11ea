"""The README's five-minute tour, command by command as it is written there, each
checked for what the README says it does (the tour's promises are this test's)."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labkit import REPO, readme_block, shell, status

import labprocs
from newtlab.agent import procs
from newtlab.agent.ports import port_in_use
from newtlab.errors import NewtlabError
from newtlab.lab import destroy_lab
from newtlab.state import load_state

pytestmark = pytest.mark.integration
PROFILES = REPO / "examples" / "line3" / "profiles"
# Not run here: `source` (this PATH has newtlab already) and `image build host` (a first
# build downloads Debian packages; tests/integration/test_image.py runs it).
SKIPPED = ("source ", "newtlab image build")
Done = subprocess.CompletedProcess[str]


def tour() -> list[str]:
    """The tour's commands, in order, without their comments."""
    return readme_block("## A five-minute tour")


def pids(*nodes: str) -> dict[str, int]:
    state = load_state("line3")
    return {node: state.nodes[node].pid for node in nodes}


@pytest.fixture
def originals(newtlab_home: Path) -> Iterator[dict[Path, bytes]]:
    """The tour deploys examples/line3 itself (its own ports): its profiles as they were,
    put back and the lab gone at the end, whatever happened."""
    saved = {path: path.read_bytes() for path in PROFILES.iterdir()}
    yield saved
    with contextlib.suppress(NewtlabError):  # the tour destroys it; this is for a failure
        destroy_lab("line3", grace=0)
    for path, content in saved.items():
        path.write_bytes(content)
    assert labprocs.vms("line3") == {} and procs.find(procs.bridge_tag("line3")) == []


def test_the_readme_tour_keeps_its_promises(
    newtlab_home: Path, originals: dict[Path, bytes]
) -> None:
    before: dict[str, object] = {}

    def plan(done: Done) -> None:  # every VM, NIC and MAC, port and link
        assert re.search(r"52:54:00(:[0-9a-f]{2}){3}", done.stdout)
        words = ("r1", "r2", "r3", "41002", "r3.console", "r2.nic2", "r2:eth2")
        assert all(word in done.stdout for word in words), done.stdout

    def deployed(done: Done) -> None:
        assert [n["status"] for n in status()["nodes"]] == ["running"] * 3

    def shown(done: Done) -> None:
        assert done.stdout.count("connected") == 2 and "bridge on local: up" in done.stdout

    def addressed(done: Done) -> None:  # at boot, and reached with no password
        assert "inet 10.0.12.1/24" in done.stdout

    def pinged(done: Done) -> None:  # r1 → r2 → r3 (ping exits 0 once a reply came)
        assert re.search(r"\b[1-3] packets received", done.stdout), done.stdout

    def validated(done: Done) -> None:  # each declared test on each of its nodes
        assert "Lab line3: 9 checks, all passed" in done.stdout, done.stdout

    def restarted(done: Done) -> None:  # r1 and r3 kept running, every link back
        assert pids("r1", "r3") == before["neighbours"]
        assert all(link["connected"] for link in status()["links"])

    def repaired(done: Done) -> None:
        assert "nothing to repair" in done.stdout

    def console(done: Done) -> None:  # its shell answered the Enter newtlab sends
        assert "r3" in done.stdout

    def logs(done: Done) -> None:  # since boot, without the shell's terminal queries
        assert "r3" in done.stdout and "\x1b[6n" not in done.stdout

    def destroyed(done: Done) -> None:  # nothing left of it, profiles as they were
        assert labprocs.vms("line3") == {} and procs.find(procs.bridge_tag("line3")) == []
        assert not (newtlab_home / "labs" / "line3").exists()
        ports = before["ports"]
        assert isinstance(ports, list) and [p for p in ports if port_in_use("127.0.0.1", p)] == []
        assert {path: path.read_bytes() for path in PROFILES.iterdir()} == originals

    promises: dict[str, Callable[[Done], None]] = {
        "newtlab plan": plan,
        "newtlab deploy": deployed,
        "newtlab status": shown,
        "newtlab ssh r1 -- ip addr": addressed,
        "newtlab ssh r1 -- ping": pinged,
        "newtlab validate": validated,
        "newtlab stop r2 && newtlab start r2": restarted,
        "newtlab repair": repaired,
        "newtlab console": console,
        "newtlab logs r3 -f": logs,
        "newtlab destroy": destroyed,
    }
    checked = []
    for command in tour():
        if command.startswith(SKIPPED):
            continue
        if command.startswith("newtlab stop"):
            before["neighbours"] = pids("r1", "r3")
        if command.startswith("newtlab destroy"):
            data = status()
            nodes = [n[k] for n in data["nodes"] for k in ("ssh_port", "console_port") if n[k]]
            links = [p for link in data["links"] for p in (link["a_port"], link["z_port"])]
            before["ports"] = nodes + links
        if command.startswith("newtlab console"):  # no terminal: stdin's content, then quiet
            done = shell(command, stdin=subprocess.DEVNULL)
        elif command.endswith(" -f"):  # follows until stopped: stopped after 3 s
            done = shell(f"timeout 3 {command}; test $? = 124")
        else:
            done = shell(command)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        promise = next((promises[p] for p in promises if command.startswith(p)), None)
        assert promise is not None, f"the README's {command!r} has no promise checked here"
        promise(done)
        checked.append(promise)
    assert set(checked) == set(promises.values())  # every step of the tour was walked
