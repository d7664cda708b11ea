"""The lab from other tools: plain OpenSSH with `newtlab ssh-config`, Ansible with
`newtlab inventory`, the graph page drawn by a real browser, and newtron's ways of
reaching a lab: `newtron provision` logging in with the profiles' mgmt_ip, ssh_port,
ssh_user and ssh_pass, newtrun's host steps (`ip netns exec HOST sh -c 'CMD'` over
that login), and the profiles put back byte for byte on destroy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from labkit import EXAMPLE, SpecDir, run_cli, status
from PIL import Image

from newtlab.export.colors import STATUS_FILL
from newtlab.export.graph import build_graph
from newtlab.export.html import layout
from newtlab.lab import Lab

pytestmark = pytest.mark.integration

HOSTS2 = EXAMPLE.parent / "hosts2"


def _cli(*args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def screenshot(page: Path, png: Path, width: int, height: int) -> Image.Image:
    browser = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    assert browser, "no headless Chromium: apt-get install chromium-headless-shell"
    subprocess.run(
        [browser, "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--force-device-scale-factor=1", f"--window-size={width},{height}",
         f"--screenshot={png}", page.as_uri()],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    return Image.open(png).convert("RGB")


def read_profiles(spec: SpecDir) -> dict[str, dict[str, Any]]:
    """Every device profile of the spec dir, parsed, by device name (as newtron reads them)."""
    return {name.removesuffix(".json"): json.loads(data) for name, data in spec.profiles().items()}


def password_ssh(profile: dict[str, Any], command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with the system OpenSSH client as newtron logs in: to the profile's
    mgmt_ip:ssh_port as its ssh_user, password auth only (ssh_pass), host key ignored."""
    with tempfile.TemporaryDirectory() as scratch:
        askpass = Path(scratch) / "askpass"
        askpass.write_text("#!/bin/sh\nprintf '%s\\n' \"$NEWTRON_SSH_PASS\"\n")
        askpass.chmod(0o700)
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        env |= {"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force",
                "NEWTRON_SSH_PASS": profile["ssh_pass"]}  # fmt: skip
        return subprocess.run(
            ["/usr/bin/ssh", "-F", "/dev/null", "-p", str(profile["ssh_port"]),
             "-o", "PubkeyAuthentication=no",
             "-o", "PreferredAuthentications=password,keyboard-interactive",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1",
             "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
             "-l", profile["ssh_user"], profile["mgmt_ip"], command],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip


def shell_quote(text: str) -> str:
    """newtrun's shellQuote: single quotes, each embedded ' written as '"'"'."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def newtrun_host_exec(
    profile: dict[str, Any], host: str, cmd: str
) -> subprocess.CompletedProcess[str]:
    """A newtrun host step: ``ip netns exec HOST sh -c 'CMD'`` over the profile's login."""
    return password_ssh(profile, f"ip netns exec {host} sh -c {shell_quote(cmd)}")


def ping_success(output: str) -> float:
    """The share of pings answered, from ping's "N% packet loss" (as newtrun judges a ping)."""
    loss = re.search(r"([\d.]+)% packet loss", output)
    assert loss, f"no packet loss figure in ping's output: {output!r}"
    return 1 - float(loss.group(1)) / 100


def newtrun_ping(profile: dict[str, Any], host: str, address: str) -> float:
    """newtrun's ping step from ``host``: its success rate, tried again once while links settle."""
    for _ in range(2):
        ran = newtrun_host_exec(profile, host, f"ping -c 5 -W 2 {address}")
        assert ran.returncode in (0, 1), ran.stderr  # 1: ping lost every reply
        success = ping_success(ran.stdout)
        if success >= 0.8:
            break
    return success


def test_ssh_config_inventory_and_graph_of_a_deployed_lab(
    make_lab: Callable[..., SpecDir], tmp_path: Path
) -> None:
    spec = make_lab(HOSTS2, configs=True)  # r1 addresses its links: the hosts ping across it
    originals = spec.profiles()
    deployed = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", timeout=600)
    assert deployed.returncode == 0, deployed.stderr + deployed.stdout

    # Plain OpenSSH reaches a VM and a virtual host inside its host VM.
    config = tmp_path / "ssh_config"
    config.write_text(_cli("ssh-config", spec.lab))
    for name in ("r1", "host1"):
        reached = subprocess.run(
            ["ssh", "-F", str(config), "-o", "BatchMode=yes", name, "hostname"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert reached.returncode == 0 and reached.stdout.strip() == name, reached.stderr

    # Ansible reads the inventory, and its raw module runs on every node through it.
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(_cli("inventory", spec.lab))
    bin_dir = Path(sys.executable).parent
    # stdin from /dev/null: Ansible refuses a non-blocking one (a pytest-xdist worker's)
    listed = subprocess.run([bin_dir / "ansible-inventory", "-i", str(inventory), "--list"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    lab = Lab.attach(spec.lab)
    rows = {row["name"]: row for row in lab.nodes()}
    assert set(found["_meta"]["hostvars"]) == {"r1", "host1", "host2"} == set(rows)
    assert sorted(found["router"]["hosts"]) == ["r1"]
    assert sorted(found["host"]["hosts"]) == ["host1", "host2"]
    r1 = found["_meta"]["hostvars"]["r1"]
    assert (r1["ansible_port"], r1["ansible_connection"]) == (rows["r1"]["port"], "ssh")
    assert found["_meta"]["hostvars"]["host1"]["ansible_user"] == "host1"
    # A short HOME: OpenSSH's control sockets under it must fit a Unix socket path.
    with tempfile.TemporaryDirectory(prefix="ansible-") as home:
        ran = subprocess.run(
            [bin_dir / "ansible", "all", "-i", str(inventory), "-m", "raw", "-a", "hostname",
             "--one-line"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": home,
                 "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_LOCAL_TEMP": home},
        )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for name in ("r1", "host1", "host2"):
        assert f"{name} | CHANGED | rc=0 | (stdout) {name}" in ran.stdout, ran.stdout

    # newtron provision: every profile says where and how to log in, and a plain OpenSSH
    # client with the password alone lands on the device's VM. A virtual host's profile
    # points at its host VM (the VM's port, user and password), whose root sees its namespace.
    lab_status = status()
    vms = {node["name"]: node for node in lab_status["nodes"]}
    vhosts = {vhost["name"]: vhost for vhost in lab_status["vhosts"]}
    profiles = read_profiles(spec)
    assert set(profiles) == {"r1", "host1", "host2"}
    for name, profile in profiles.items():
        assert all(profile.get(k) for k in ("mgmt_ip", "ssh_port", "ssh_user", "ssh_pass")), name
    assert profiles["r1"]["ssh_port"] == vms["r1"]["ssh_port"]
    landed = password_ssh(profiles["r1"], "hostname")
    assert landed.returncode == 0 and landed.stdout.strip() == "r1", landed.stderr
    for host in ("host1", "host2"):
        profile = profiles[host]
        assert profile["ssh_port"] == vhosts[host]["ssh_port"] == vms["hostvm-0"]["ssh_port"]
        assert profile["ssh_user"] == vms["hostvm-0"]["ssh_user"]
        landed = password_ssh(profile, "hostname; ip netns list")
        assert landed.returncode == 0, landed.stderr
        words = landed.stdout.split()  # ip netns list: "host1 (id: 0)" or just "host1"
        assert words[0] == "hostvm-0" and host in words[1:], landed.stdout

    # newtrun's host steps, shaped as newtrun sends them: each host pings the other across
    # r1; a pipe, a semicolon and an embedded quote all run inside the host's namespace
    # (anywhere else each part prints something else); a failing step's exit status comes back.
    address = {host: vhosts[host]["addresses"][0].split("/")[0] for host in ("host1", "host2")}
    for host, peer in (("host1", "host2"), ("host2", "host1")):
        assert newtrun_ping(profiles[host], host, address[peer]) >= 0.8, f"{host} → {peer}"
    compound = (
        "ip -o -4 addr show dev eth0 | awk -v ns=\"$(ip netns identify)\" '{print ns, $4}'; "
        "echo \"it's via $(ip route show default | awk '{print $3}')\""
    )
    for host in ("host1", "host2"):
        ran = newtrun_host_exec(profiles[host], host, compound)
        assert ran.returncode == 0, ran.stderr
        vhost = vhosts[host]
        assert ran.stdout == f"{host} {vhost['addresses'][0]}\nit's via {vhost['gateway']}\n"
    failed = newtrun_host_exec(
        profiles["host1"], "host1", 'test "$(ip netns identify)" = host2 || exit 42'
    )
    assert failed.returncode == 42, failed.stdout + failed.stderr

    # The graph page of the live lab, r1 stopped: drawn by Chromium, every name inked
    # where the layout put it, r1 grey, the virtual hosts green, its links dashed red.
    assert run_cli("stop", "r1", "--grace", "0").returncode == 0
    mermaid = _cli("graph", spec.lab)
    assert "stopped" in mermaid and mermaid.count(" running\n") == 2  # class lines
    page = tmp_path / "graph.html"
    assert run_cli("graph", spec.lab, "--format", "html", "-o", str(page)).returncode == 0
    drawn = build_graph(lab.plan)  # the same layout, from the plan alone
    where = layout(drawn)
    image = screenshot(page, tmp_path / "graph.png", where.width, where.height)
    expected = {"r1": "stopped", "host1": "running", "host2": "running"}
    for name, state in expected.items():
        box = where.devices[name]
        assert image.getpixel((box.x + box.w - 8, box.y + box.h - 6)) == _rgb(STATUS_FILL[state])
        label = image.crop((box.x + 8, box.y + 6, box.x + 8 + 12 * len(name), box.y + 26))
        ink = sum(1 for x in range(label.width) for y in range(label.height)
                  if max(label.getpixel((x, y))) < 90)  # fmt: skip
        assert ink > 20, f"{name}'s name is not drawn"
    assert 'http-equiv="refresh"' in page.read_text()
    text = page.read_text()
    assert all(f'data-name="{n}"' in text for n in expected)

    # Destroyed, the lab leaves every profile exactly as it was before deploy.
    destroyed = run_cli("destroy", spec.lab)
    assert destroyed.returncode == 0, destroyed.stderr
    assert spec.profiles() == originals
