"""What a user reads: a node that is not running, options in any position, names that
are not there, requests refused before anything happens, and locks that go with their
lab. Each runs the real command in a subprocess (no VM is needed for any of it)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from newtlab.home import newtlab_home
from specfactory import deployed, linked, run_cli, write_specs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def line3() -> None:
    """examples/line3's state as deploy leaves it; nothing of it runs (its VMs 'died')."""
    deployed(EXAMPLES / "line3", status="running")


@pytest.fixture
def hosts2_stopped() -> None:
    deployed(EXAMPLES / "hosts2", status="stopped")


@pytest.mark.usefixtures("line3")
def test_a_node_that_is_not_running_is_said_with_what_brings_it_back() -> None:
    for argv in (["exec", "r3", "--", "hostname"], ["ssh", "r3"], ["console", "r3"]):
        result = run_cli(*argv)
        assert result.returncode == 125, (argv, result.stderr)
        assert result.stderr == (
            "error: r3's QEMU has exited — `newtlab start r3` starts it again "
            "(`newtlab logs r3 --qemu` says why it ended)\n"
        ), argv
        assert "console of" not in result.stderr  # nothing announced before the check


@pytest.mark.usefixtures("hosts2_stopped")
def test_a_virtual_host_names_its_vm() -> None:
    result = run_cli("exec", "host1", "--", "hostname")
    assert result.returncode == 125
    assert result.stderr == (
        "error: host1 (a virtual host in hostvm-0) is not running: hostvm-0 is stopped — "
        "`newtlab start hostvm-0` starts it\n"
    )


@pytest.mark.usefixtures("line3")
def test_debug_anywhere_shows_the_chain_and_json_anywhere() -> None:
    for argv in (["--debug", "status", "nolab"], ["status", "nolab", "--debug"]):
        result = run_cli(*argv)
        assert result.returncode == 1 and "Traceback" in result.stderr, argv
        assert result.stderr.rstrip().endswith("(deployed labs: line3)")
    after, before = run_cli("status", "--json"), run_cli("--json", "status")
    assert after.returncode == before.returncode == 0
    assert json.loads(after.stdout)["lab"] == json.loads(before.stdout)["lab"] == "line3"
    assert run_cli("--json", "link", "show").stdout == run_cli("link", "show", "--json").stdout
    refused = run_cli("--json", "version")
    assert refused.returncode == 2
    assert refused.stderr == "error: `newtlab version` prints no data: it has no --json\n"
    # after the node of ssh, and after --, the words are the remote command's
    remote = run_cli("ssh", "r3", "ls", "--debug")
    assert remote.returncode == 125 and "Traceback" not in remote.stderr


@pytest.mark.usefixtures("line3")
def test_names_that_are_not_there_get_the_close_ones() -> None:
    cases = {
        ("exec", "r4", "--", "true"): "no deployed lab has a node named 'r4' — did you mean "
        "r1 or r2 or r3? (`newtlab status` lists each lab's nodes)",
        ("status", "lin3"): "lab 'lin3' is not deployed — did you mean line3? (deployed labs: "
        "line3)",
        ("exec", "r4", "--lab", "line3", "--", "true"): "lab 'line3' has no node 'r4' — did "
        "you mean r1 or r2 or r3? (its nodes: r1, r2, r3)",
        ("link", "set", "r1:eth2", "--delay", "1ms"): "lab line3 has no link ending at "
        "'r1:eth2' (r1's linked interfaces: r1:eth1)",
        ("platforms", "sonic-v"): "no platform 'sonic-v' in the catalog — did you mean",
    }
    for argv, message in cases.items():
        result = run_cli(*argv)
        assert result.returncode != 0 and message in result.stderr, (argv, result.stderr)


@pytest.mark.usefixtures("line3")
def test_a_refused_capture_makes_no_file_and_says_nothing_first(tmp_path: Path) -> None:
    pcap = tmp_path / "out.pcap"
    for end, why in (("r1:eth9", "no link ending at 'r1:eth9'"),
                     ("r1:eth1", "bridge does not answer on its control socket")):  # fmt: skip
        result = run_cli("capture", end, "-w", str(pcap))
        assert result.returncode == 1 and why in result.stderr, result.stderr
        assert "capturing" not in result.stderr and not pcap.exists()


def test_a_lab_that_is_not_there_leaves_no_lock() -> None:
    assert run_cli("destroy", "nosuchlab").returncode == 1
    assert run_cli("status", "nosuchlab").returncode == 1
    locks = newtlab_home() / "locks"
    assert not (locks / "nosuchlab.lock").exists()
    assert run_cli("prune", "--json").stdout.count('"kind"') == 0


def test_plan_shows_macs_and_leaves_the_accelerator_to_deploy() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80"}
    argv = [sys.executable, "-m", "newtlab", "plan", "-S", str(EXAMPLES / "line3"), "--no-probe"]
    shown = subprocess.run(argv, capture_output=True, text=True, env=env).stdout
    assert "KVM if it works here (proven at deploy), else TCG" in shown
    macs = re.findall(r"52:54:00(?::[0-9a-f]{2}){3}", shown)
    assert len(macs) == 7 and "…" not in shown  # every NIC's, whole at 80 columns
    with_argv = subprocess.run([*argv, "--argv"], capture_output=True, text=True, env=env)
    assert with_argv.stdout.count("qemu-system-x86_64 -name newtlab:line3:") == 3


def test_a_deploy_refused_before_it_starts_leaves_no_lock_and_destroy_says_why() -> None:
    refused = run_cli("deploy", "-S", str(EXAMPLES / "line3"))  # no host image here
    assert refused.returncode == 1
    assert "vm_image not found" in refused.stderr and "newtlab image build host" in refused.stderr
    assert "vm_kernel" not in refused.stderr  # missing with its image: said once, as the image
    assert not (newtlab_home() / "locks" / "line3.lock").exists()
    nothing = run_cli("destroy")
    assert (nothing.returncode, nothing.stderr) == (
        1,
        "error: no lab is deployed: nothing to destroy\n",
    )


def test_an_image_without_its_direct_boot_kernel_says_to_build_again() -> None:
    images = newtlab_home() / "images"
    images.mkdir(parents=True)
    qcow2 = ["qemu-img", "create", "-q", "-f", "qcow2", str(images / "newtlab-host.qcow2"), "1M"]
    subprocess.run(qcow2, check=True)  # as `newtlab image build` made it before vm_kernel
    (images / "newtlab-host.initrd.gz").write_bytes(b"x")
    refused = run_cli("deploy", "-S", str(EXAMPLES / "line3"))
    assert refused.returncode == 1
    lines = [line.strip() for line in refused.stderr.splitlines() if "vm_" in line]
    assert lines == [
        f"{node}: vm_kernel not found: {images}/newtlab-host.vmlinux — build it with "
        "`newtlab image build host`"
        for node in ("r1", "r2", "r3")
    ]


def test_newtrons_test_host_image_name_says_how_to_provide_it(tmp_path: Path) -> None:
    from newtlab.agent.files import image_problem

    problem = image_problem(str(tmp_path / "alpine-testhost.qcow2"))
    assert problem is not None
    assert "`newtlab image build host --name alpine-testhost.qcow2`" in problem


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ([("s1", "10.0.0.1"), ("s2", "10.0.0.1")],
         "newtlab.servers[1].address: servers s1 and s2 are the same machine (10.0.0.1)"),
        ([("s1", "10.0.0.1"), ("s1", "10.0.0.2")], "two servers are named 's1'"),
    ],
)  # fmt: skip
def test_a_pool_naming_one_server_twice_is_a_spec_error(
    tmp_path: Path, servers: list[tuple[str, str]], message: str
) -> None:
    pool = [{"name": name, "address": address} for name, address in servers]
    spec = write_specs(tmp_path / "lab", linked(("a:Ethernet0", "b:Ethernet0")),
                       newtlab={"servers": pool})  # fmt: skip
    result = run_cli("plan", "-S", str(spec), "--no-probe")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "topology.json" in result.stderr


@pytest.mark.usefixtures("line3")
def test_words_between_the_node_and_the_command_are_refused() -> None:
    """Before: `newtlab exec r1 -S dir -- cmd` ran `-S dir -- cmd` as the remote command."""
    result = run_cli("exec", "r1", "-S", "examples/line3", "--", "hostname")
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "error: newtlab exec does not take -S: its only option is --lab; "
        "the command goes after `--` (newtlab exec r1 -- COMMAND [ARG…])\n"
    )
