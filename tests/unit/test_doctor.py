"""`newtlab doctor`: what this machine has, a lab's ports, an unreachable server."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from specfactory import FIXTURES, run_cli, write_specs


def _checks(*args: str) -> tuple[int, dict[tuple[str, str], dict[str, str]]]:
    result = run_cli("doctor", "--json", *args)
    rows = json.loads(result.stdout)
    return result.returncode, {(r["host"], r["what"]): r for r in rows}


def test_this_machine() -> None:
    code, checks = _checks()
    assert code == 0  # this machine runs labs: nothing FAILs
    qemu = checks["local", "qemu-system-x86_64"]
    assert qemu["level"] == "OK" and qemu["detail"].startswith("QEMU emulator version")
    assert checks["local", "qemu-img"]["level"] == "OK"
    assert checks["local", "accelerator"]["detail"].split()[0] in ("kvm", "tcg")
    assert "MiB available" in checks["local", "memory"]["detail"]
    image = checks["local", "host image"]  # this test's NEWTLAB_HOME is empty
    assert image["level"] == "WARN" and image["fix"].startswith("newtlab image build host")
    assert all(r["level"] in ("OK", "WARN", "FAIL") for r in checks.values())


def test_a_lab_whose_port_is_taken(tmp_path: Path) -> None:
    spec = FIXTURES / "1node-vs" / "specs"
    plan = json.loads(run_cli("plan", "-S", str(spec), "--json", "--no-probe").stdout)
    port = plan["nodes"][0]["ssh_port"]
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen(1)
        code, checks = _checks("-S", str(spec))
    assert code == 1
    ports = checks["lab", "ports"]
    assert ports["level"] == "FAIL" and str(port) in ports["detail"]


def test_an_unreachable_server(tmp_path: Path) -> None:
    devices = {"a": {"interfaces": {}}}
    servers = [{"name": "far", "address": "127.0.0.2", "ssh_port": 9, "user": "nobody"}]
    spec = write_specs(tmp_path, devices, newtlab={"servers": servers})
    code, checks = _checks("-S", str(spec))
    assert code == 1 and checks["far", "reachable"]["level"] == "FAIL"


def test_a_lab_directory_others_may_enter_is_named() -> None:
    """Its consoles (root shells) and VM NICs are sockets in it: doctor says so."""
    code, checks = _checks()
    assert checks["local", "lab privacy"]["level"] == "OK"  # this test's home has no lab
    labs = Path(os.environ["NEWTLAB_HOME"]) / "labs"
    (labs / "open" / "qemu").mkdir(parents=True, mode=0o700)
    (labs / "open").chmod(0o755)
    (labs / "closed" / "qemu").mkdir(parents=True, mode=0o700)
    (labs / "closed").chmod(0o700)
    code, checks = _checks()
    privacy = checks["local", "lab privacy"]
    assert code == 0 and privacy["level"] == "WARN", privacy
    assert privacy["detail"] == f"{labs / 'open'} is mode 0755"
    assert privacy["fix"].startswith("chmod 700")
