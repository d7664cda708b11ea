"""The lab from other tools: plain OpenSSH with `newtlab ssh-config`, Ansible with
`newtlab inventory`, and the graph page drawn by a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from labkit import EXAMPLE, SpecDir, run_cli
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


def test_ssh_config_inventory_and_graph_of_a_deployed_lab(
    make_lab: Callable[..., SpecDir], tmp_path: Path
) -> None:
    spec = make_lab(HOSTS2)
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
    listed = subprocess.run([bin_dir / "ansible-inventory", "-i", str(inventory), "--list"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
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
    ran = subprocess.run(
        [bin_dir / "ansible", "all", "-i", str(inventory), "-m", "raw", "-a", "hostname",
         "--one-line"],
        capture_output=True, text=True, timeout=180,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path),
             "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_LOCAL_TEMP": str(tmp_path)},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for name in ("r1", "host1", "host2"):
        assert f"{name} | CHANGED | rc=0 | (stdout) {name}" in ran.stdout, ran.stdout

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
