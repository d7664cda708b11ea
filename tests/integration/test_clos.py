"""examples/clos on newtlab's FRR router image: a routed fabric that converges by itself.

One `deploy --validate` of the example as it is (its configs and its declared tests),
shared by every test of the module: BGP established everywhere within 60 s of the last
node being ready (the declared test's wait), every host reaching every other, each
rendered config accepted by FRR itself, a pulled leaf uplink losing at most 5 s of pings
before traffic takes the other spine, the cable back bringing both equal-cost routes back
into the leaf's FIB, and a spine stopped and started getting its sessions back by itself.
`newtlab validate` is checked on it too: JSON and JUnit reports, a JSON query's and an
ssh line's evidence, the pulled cable failing the uplinks test with its own message and
exit status 1, then every test passing again. The lab is the README tour's "routed
fabric".
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import junitparser
import pytest
from labkit import REPO, SpecDir, readme_block, run_cli, shell, ssh, ssh_run, wait_for

from newtlab.image import BuiltImage

pytestmark = pytest.mark.integration

CLOS = REPO / "examples" / "clos"
ROUTERS = ["leaf1", "leaf2", "leaf3", "leaf4", "spine1", "spine2"]
LEAVES = ROUTERS[:4]
HOSTS = {f"host{n}": f"10.10.{n}.{n}0" for n in range(1, 5)}  # their derived addresses
CHECKS = [
    *(("bgp", r) for r in ROUTERS), *(("uplinks", leaf) for leaf in LEAVES),
    *(("ecmp", leaf) for leaf in LEAVES), *(("host-to-host", h) for h in HOSTS),
]  # fmt: skip


@pytest.fixture(scope="module")
def clos(
    make_shared_lab, module_home: Path, router_image: BuiltImage
) -> Iterator[tuple[SpecDir, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """The example deployed once, its declared tests run at once: with their report."""
    for path in router_image.boot_files:
        (module_home / "images" / path.name).symlink_to(path)
    spec: SpecDir = make_shared_lab(CLOS, configs=True, declared=True)
    started = time.monotonic()
    deployed = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", "--validate",
                       "--json", timeout=900)  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    print(f"clos deployed and validated in {time.monotonic() - started:.0f} s")
    yield spec, json.loads(deployed.stdout)["validation"]


def _validate(*tests: str) -> dict[str, Any]:
    argv = ["validate", "--json", *(a for t in tests for a in ("--test", t))]
    result = run_cli(*argv, timeout=300)
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _nexthops(leaf: str, prefix: str) -> list[str]:
    routes = json.loads(ssh(leaf, ["ip", "-j", "route", "show", prefix]) or "[]")
    if not routes:
        return []
    route = routes[0]
    return [hop["dev"] for hop in route.get("nexthops", [route])]


def test_sessions_come_up_and_every_host_reaches_every_other(
    clos: tuple[SpecDir, dict[str, Any]], in_module_home: Path
) -> None:
    # Run as the last node was ready: bgp waits at most 60 s for every session.
    _, report = clos
    assert report["passed"] and report["failed"] == 0, report
    assert [(r["test"], r["node"]) for r in report["results"]] == CHECKS
    by_check = {(r["test"], r["node"]): r for r in report["results"]}
    assert by_check["bgp", "spine1"]["evidence"] == "ipv4Unicast.failedPeers → 0"
    assert by_check["uplinks", "leaf1"]["evidence"] == "both spines answer"  # the ssh line's
    for spine in ("spine1", "spine2"):
        summary = json.loads(ssh(spine, ["vtysh", "-c", "show bgp summary json"]))
        peers = summary["ipv4Unicast"]["peers"]
        assert sorted(p["desc"] for p in peers.values()) == LEAVES, peers
        assert {p["state"] for p in peers.values()} == {"Established"}, peers

    def reaches_the_others(host: str) -> str:
        others = " ".join(a for h, a in HOSTS.items() if h != host)
        return ssh(host, f"for to in {others}; do ping -c 1 -W 3 $to >/dev/null || exit 1; done")

    with ThreadPoolExecutor(len(HOSTS)) as pool:  # each host at once: they share one VM
        list(pool.map(reaches_the_others, HOSTS))


def test_every_rendered_config_is_frrs_and_frr_accepts_it(
    clos: tuple[SpecDir, dict[str, Any]], in_module_home: Path
) -> None:
    plan = json.loads(run_cli("plan", "--json", "-S", str(clos[0].path)).stdout)
    rendered = {n["name"]: n["startup_config"]["content"] for n in plan["nodes"]
                if n["name"] in ROUTERS}  # fmt: skip

    def installed_and_checked(router: str) -> tuple[str, str]:
        # The file NoCloud installed, then FRR's verdict on it and what FRR runs.
        return router, ssh(router, "cat /etc/frr/frr.conf; echo @@; vtysh -C -f /etc/frr/frr.conf"
                           " && echo checked; echo @@; vtysh -c 'show running-config'")  # fmt: skip

    with ThreadPoolExecutor(len(ROUTERS)) as pool:
        for router, output in pool.map(installed_and_checked, ROUTERS):
            installed, checked, running = output.split("@@\n")
            # The image puts its zebra setting first (docs/image.md, the router image).
            assert installed == "no zebra nexthop kernel enable\n" + rendered[router]
            assert checked.endswith("checked\n"), checked
            assert f"router bgp {650 if router.startswith('leaf') else 651}" in running
    # The check can fail: FRR refuses a line it does not know.
    bad = ssh_run("spine1", "printf 'router bgp 1\\n neighbor 10.0.0.9 remote-as x\\n'"
                  " > /tmp/bad.conf && vtysh -C -f /tmp/bad.conf")  # fmt: skip
    assert bad.returncode != 0 and "Unknown command" in bad.stdout + bad.stderr


def test_a_pulled_uplink_moves_traffic_to_the_other_spine_and_back(
    clos: tuple[SpecDir, dict[str, Any]], in_module_home: Path, tmp_path: Path
) -> None:
    lab = clos[0].lab
    prefix = "10.10.3.0/24"
    assert sorted(_nexthops("leaf1", prefix)) == ["eth1", "eth2"]
    # host1 pings host3 every 0.2 s for 12 s; the cable goes 3 s in.
    pinger = subprocess.Popen(
        [sys.executable, "-m", "newtlab", "exec", "host1", "--", "ping", "-i", "0.2",
         "-c", "60", "-W", "1", HOSTS["host3"]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(3)
        pulled = run_cli("link", "down", "leaf1:eth1")
        assert pulled.returncode == 0, pulled.stderr
        output, _ = pinger.communicate(timeout=120)
    finally:
        pinger.kill()
    sent, received = (int(n) for n in _summary(output))
    print(f"pings lost while the uplink went down: {sent - received} of {sent}")
    assert sent == 60 and sent - received <= 25, output
    assert _nexthops("leaf1", prefix) == ["eth2"]  # only through spine2 now
    ssh("host1", f"ping -c 3 -W 2 {HOSTS['host3']}")
    # The declared uplinks test fails on leaf1 alone, with its own message.
    junit = tmp_path / "junit.xml"
    failed = run_cli("validate", "--test", "uplinks", "--junit", str(junit), "--json")
    assert failed.returncode == 1, failed.stderr + failed.stdout
    results = {r["node"]: r for r in json.loads(failed.stdout)["results"]}
    assert [n for n, r in results.items() if not r["passed"]] == ["leaf1"], results
    assert results["leaf1"]["message"].startswith(
        "leaf1 cannot reach a spine over its own link — "
    ), results["leaf1"]
    assert results["leaf1"]["evidence"] == "no reply from 10.1.1.0"  # the line it printed
    assert "uplinks: ✗ leaf1 ✓ leaf2 ✓ leaf3 ✓ leaf4 — 1 failed" in failed.stderr  # live line
    cases = {case.name: case for suite in junitparser.JUnitXml.fromfile(str(junit))
             for case in suite}  # fmt: skip
    assert [n for n, c in cases.items() if not c.is_passed] == ["leaf1"]
    [failure] = cases["leaf1"].result
    assert failure.message == "leaf1 cannot reach a spine over its own link"

    back = run_cli("link", "up", "leaf1:eth1")
    assert back.returncode == 0, back.stderr
    wait_for(lambda: sorted(_nexthops("leaf1", prefix)) == ["eth1", "eth2"], timeout=60)
    passed = run_cli("validate", lab, "--test", "uplinks", "--junit", str(junit))
    assert passed.returncode == 0, passed.stderr + passed.stdout
    assert f"Lab {lab}: 4 checks, all passed" in passed.stdout
    suites = junitparser.JUnitXml.fromfile(str(junit))
    cases_now = [(case.classname, case.name, case.is_passed) for suite in suites for case in suite]
    assert cases_now == [(f"{lab}.uplinks", leaf, True) for leaf in LEAVES]


def _summary(output: str) -> tuple[str, str]:
    line = next(line for line in output.splitlines() if "packets transmitted" in line)
    words = line.split()
    return words[0], words[3]


def test_the_readmes_routed_fabric_keeps_its_promises(
    clos: tuple[SpecDir, dict[str, Any]], in_module_home: Path
) -> None:
    """The README's commands for examples/clos, as written there, on this module's copy
    of it (its deploy and destroy are the fixture's; the image build, the suite's)."""
    done: subprocess.CompletedProcess[str]

    def sessions() -> None:  # one line per leaf, each with prefixes received: established
        rows = [line.split() for line in done.stdout.splitlines() if line.startswith("leaf")]
        assert [r[0].split("(")[0] for r in rows] == LEAVES and all(r[9].isdigit() for r in rows)

    def validated() -> None:
        assert f"Lab {clos[0].lab}: {len(CHECKS)} checks, all passed" in done.stdout

    def pinged() -> None:
        assert "3 packets received" in done.stdout

    def pulled() -> None:
        assert "cable pulled" in done.stdout

    def one_path() -> None:  # the route may take a moment to leave spine1: the command again
        wait_for(lambda: "via 10.2.1.0 dev eth2" in shell(command).stdout, timeout=30)
        assert "eth1" not in shell(command).stdout

    def back() -> None:
        wait_for(lambda: sorted(_nexthops("leaf1", "10.10.3.0/24")) == ["eth1", "eth2"], 60)

    promises = {
        "newtlab exec spine1 -- vtysh": sessions,
        "newtlab validate": validated,
        "newtlab exec host1 -- ping": pinged,
        "newtlab link down leaf1:eth1": pulled,
        "newtlab exec leaf1 -- ip route": one_path,
        "newtlab link up leaf1:eth1": back,
    }
    walked = []
    for command in readme_block("A routed fabric that converges by itself"):
        if command.startswith(("newtlab image build", "newtlab deploy", "newtlab destroy")):
            continue
        done = shell(command)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        promise = next(promises[p] for p in promises if command.startswith(p))
        promise()
        walked.append(promise)
    assert walked == list(promises.values())


def test_a_restarted_spine_gets_its_sessions_back_by_itself(
    clos: tuple[SpecDir, dict[str, Any]], in_module_home: Path
) -> None:
    for command in ("stop", "start"):
        done = run_cli(command, "spine2", timeout=600)
        assert done.returncode == 0, done.stderr
    report = _validate("bgp", "ecmp")
    assert report["passed"] and report["failed"] == 0, report
