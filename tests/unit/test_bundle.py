"""The shipped agent and newtlink run on a bare system Python with nothing of newtlab installed."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from newtlab.agent import procs
from newtlab.runtime.transports.bundle import AGENT, digest, files

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")


def ship(target: Path) -> Path:
    for relative, content in files().items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return target


def agent(shipped: Path, home: Path, op: str, **arguments: Any) -> Any:
    """Run ``op`` as a server would: its own python3, only the bundle on its path."""
    assert SYSTEM_PYTHON is not None
    env = {"PATH": os.environ["PATH"], "NEWTLAB_HOME": str(home), "PYTHONPATH": str(shipped)}
    result = subprocess.run(
        [SYSTEM_PYTHON, "-s", "-m", AGENT, op],
        input=json.dumps(arguments),
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bundle_is_the_agent_and_newtlink_only() -> None:
    paths = list(files())
    assert f"{AGENT}/__main__.py" in paths and "newtlink/__main__.py" in paths
    assert {p.split("/")[0] for p in paths} == {AGENT, "newtlink"}
    assert len(digest()) == 16 and digest() == digest()


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no system python3")
def test_shipped_agent_runs_a_supervised_bridge(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shipped = ship(tmp_path / "runtime")
    home = tmp_path_factory.mktemp("home")  # short: the bridge's Unix sockets live in it
    assert agent(shipped, home, "prepare_lab", lab="shiptest") == {"result": None}
    assert (home / "labs" / "shiptest" / "disks").is_dir()
    unknown = agent(shipped, home, "check_image", image=str(tmp_path / "none.qcow2"))
    assert unknown["result"].startswith("vm_image not found")
    link = {"a": "x:eth1", "z": "y:eth1", "a_dial": "127.0.0.1:9", "z_dial": "127.0.0.1:9"}
    config = {"lab": "shiptest", "links": [link]}
    started = agent(shipped, home, "newtlink_start", lab="shiptest", config=config)
    try:
        supervisor = started["result"]
        found = agent(shipped, home, "newtlink_survey", lab="shiptest")["result"]
        assert {kind for _, kind, _, _ in found["processes"]} == {"supervisor", "bridge"}
        assert agent(shipped, home, "qemu_processes", lab="shiptest") == {"result": []}
        stats = found["stats"]
        assert stats["lab"] == "shiptest" and stats["restarts"] == 0
        argv = procs.cmdline(stats["pid"])
        assert argv is not None and argv[:3] == [SYSTEM_PYTHON, "-m", "newtlink"]
        log = agent(shipped, home, "read_file", lab="shiptest", relative="logs/newtlink.log")
        assert b"supervising bridge" in base64.b64decode(log["result"]["base64"])
        written = {"base64": base64.b64encode(b"\0bytes\xff").decode()}  # bytes both ways
        agent(shipped, home, "write_file", lab="shiptest", relative="x.bin", data=written)
        back = agent(shipped, home, "read_file", lab="shiptest", relative="x.bin")
        assert back == {"result": written}
        assert agent(shipped, home, "newtlink_stop", lab="shiptest") == {"result": []}
        assert not procs.is_ours(supervisor, procs.bridge_tag("shiptest"))
    finally:
        for pid in procs.find(procs.bridge_tag("shiptest")):
            procs.terminate(pid, procs.bridge_tag("shiptest"), 1)
    failure = agent(shipped, home, "newtlink_start", lab="shiptest", config={"links": "x"})
    assert "newtlink bridge did not start" in failure["error"]
