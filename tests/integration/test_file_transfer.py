"""Files to a node and back with the host's own tools, through `newtlab ssh-config`:
scp (the SFTP protocol, OpenSSH 9's default), `scp -O` (the legacy protocol), sftp
and rsync over ssh — as docs/tools.md promises, on newtlab's own host image."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from labkit import SpecDir, run_cli

pytestmark = pytest.mark.integration

NODE = "r1"
SIZE = 512 * 1024 + 13  # not a multiple of any block size


def _one_router(topology: dict[str, Any]) -> None:
    topology["devices"] = {NODE: {"interfaces": {}}}


def _run(argv: list[str], what: str) -> str:
    result = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{what} failed ({result.returncode}): {result.stderr}"
    return result.stdout


@pytest.fixture
def ssh_config(make_lab: Callable[..., SpecDir], tmp_path: Path) -> Path:
    """One host-image VM deployed (make_lab destroys it at the end, whatever happens) and
    its `newtlab ssh-config` in a file."""
    for tool in ("ssh", "scp", "sftp", "rsync"):
        assert shutil.which(tool), (
            f"no {tool} on this machine: apt-get install openssh-client rsync"
        )
    spec = make_lab(name="xfer", edit=_one_router)
    for profile in (spec.path / "profiles").glob("*.json"):
        if profile.stem != NODE:
            profile.unlink()
    deployed = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", timeout=600)
    assert deployed.returncode == 0, deployed.stderr + deployed.stdout
    written = run_cli("ssh-config", spec.lab)
    assert written.returncode == 0, written.stderr
    config = tmp_path / "lab.ssh"
    config.write_text(written.stdout)
    return config


def test_scp_scp_legacy_sftp_and_rsync_to_a_node_and_back(ssh_config: Path, tmp_path: Path) -> None:
    cfg = ["-F", str(ssh_config), "-o", "BatchMode=yes"]

    def round_trip(name: str, put: list[str], get: list[str]) -> str:
        """A file of random bytes to the node with ``put`` (checked there by its
        SHA-256) and back with ``get`` (checked byte for byte here); the time both took.
        SENT, REMOTE and BACK in the commands stand for the three files."""
        payload = os.urandom(SIZE)
        files = {"SENT": tmp_path / f"{name}.bin", "BACK": tmp_path / f"{name}.back"}
        files["SENT"].write_bytes(payload)
        remote = f"/tmp/{name}.bin"

        def fill(argv: list[str]) -> list[str]:
            return [a.replace("REMOTE", remote) if "REMOTE" in a else str(files.get(a, a))
                    for a in argv]  # fmt: skip

        started = time.monotonic()
        _run(fill(put), f"{name}: copying to {NODE}")
        there = _run(["ssh", *cfg, NODE, f"sha256sum {remote}"], f"{name}: sha256sum on {NODE}")
        assert there.split()[0] == hashlib.sha256(payload).hexdigest(), f"{name}: to {NODE}"
        _run(fill(get), f"{name}: copying from {NODE}")
        assert files["BACK"].read_bytes() == payload, f"{name}: back from {NODE}"
        return f"{name} {time.monotonic() - started:.2f} s"

    rsh = shlex.join(["ssh", *cfg])  # rsync's -e: its remote shell command line
    # sftp reads its commands from a batch file (-b): one per direction.
    (tmp_path / "put.sftp").write_text(f"put {tmp_path / 'sftp.bin'} /tmp/sftp.bin\n")
    (tmp_path / "get.sftp").write_text(f"get /tmp/sftp.bin {tmp_path / 'sftp.back'}\n")
    took = [
        round_trip("scp", ["scp", *cfg, "SENT", f"{NODE}:REMOTE"],
                   ["scp", *cfg, f"{NODE}:REMOTE", "BACK"]),
        round_trip("scp-O", ["scp", "-O", *cfg, "SENT", f"{NODE}:REMOTE"],
                   ["scp", "-O", *cfg, f"{NODE}:REMOTE", "BACK"]),
        round_trip("sftp", ["sftp", *cfg, "-b", str(tmp_path / "put.sftp"), NODE],
                   ["sftp", *cfg, "-b", str(tmp_path / "get.sftp"), NODE]),
        round_trip("rsync", ["rsync", "-e", rsh, "SENT", f"{NODE}:REMOTE"],
                   ["rsync", "-e", rsh, f"{NODE}:REMOTE", "BACK"]),
    ]  # fmt: skip
    print("\nround trips: " + ", ".join(took))
