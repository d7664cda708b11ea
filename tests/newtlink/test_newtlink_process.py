"""The process contract: READY line, exit 2 with one line on any start failure, clean stop."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from newtlink_kit import (
    Newtlink,
    StartBridge,
    argv_for,
    free_ports,
    link_config,
    process_alive,
    run_to_exit,
    write_config,
)
from newtlink_traffic import Checker, Frames

import newtlab.newtlink as package

pytestmark = pytest.mark.integration


def assert_one_clean_line(stderr: str, expected: str) -> None:
    assert expected in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_port_in_use_fails_cleanly_and_closes_the_rest(tmp_path: Path) -> None:
    ports = free_ports(5)
    holder = socket.socket()
    holder.bind(("127.0.0.1", ports[3]))
    holder.listen(1)
    config = {
        "links": [
            {"a": "r1:eth1", "z": "r2:eth1", "a_port": ports[0], "z_port": ports[1]},
            {"a": "r2:eth2", "z": "r3:eth1", "a_port": ports[2], "z_port": ports[3]},
        ],
        "stats_addr": f"127.0.0.1:{ports[4]}",
        "stats_unix": str(tmp_path / "s.sock"),
    }
    try:
        result = run_to_exit(write_config(tmp_path, config))
    finally:
        holder.close()
    assert result.returncode == 2 and result.stdout == ""
    assert_one_clean_line(
        result.stderr,
        f"newtlink: cannot listen on 127.0.0.1:{ports[3]} (link r2:eth2 -- r3:eth1, z side): "
        "Address already in use",
    )
    for port in (*ports[:3], ports[4]):  # everything it had opened is closed again
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
    assert not (tmp_path / "s.sock").exists()


def test_stats_port_in_use_names_the_stats_endpoint(tmp_path: Path) -> None:
    ports = free_ports(3)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[2]))
        holder.listen(1)
        config = {
            "links": [link_config(0, ports[0], ports[1])],
            "stats_addr": f"127.0.0.1:{ports[2]}",
        }
        result = run_to_exit(write_config(tmp_path, config))
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, f"cannot listen on 127.0.0.1:{ports[2]} (stats)")


def test_a_live_bridge_keeps_its_stats_socket(start_bridge: StartBridge, tmp_path: Path) -> None:
    first = start_bridge()
    ports = free_ports(2)
    config = {"links": [link_config(0, *ports)], "stats_unix": first.unix}
    result = run_to_exit(write_config(tmp_path, config))
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, "a running process serves it")
    assert first.stats()["a"] == "a0:eth1"  # the first bridge still answers


def test_a_stale_stats_socket_is_replaced(tmp_path: Path, start_bridge: StartBridge) -> None:
    bridge = start_bridge()
    bridge.proc.kill()  # dies without removing its socket file
    bridge.proc.wait()
    assert Path(bridge.unix).exists()
    again = start_bridge(stats_unix=bridge.unix)
    assert again.stats()["a_connected"] is False


BAD_CONFIGS = [
    (None, "no such file"),
    ("{nope", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    ("[]", "expected a JSON object at the top level"),
    ({"lab": "x"}, "config: missing 'links'"),
    ({"links": [{"a": "x", "z": "y", "a_port": 1}]}, "links[0]: missing 'z_port'"),
    (
        {"links": [{"a": "x", "z": "y", "a_port": "1", "z_port": 2}]},
        "links[0].a_port: expected int",
    ),
    ({"links": [{"a": "x", "z": "y", "a_port": 1, "z_port": 70000}]}, "is not a TCP port"),
    (
        {"links": [{"a": "x", "z": "y", "a_port": 1, "z_port": 2, "a_allow": ["nope"]}]},
        "links[0].a_allow[0]: 'nope' is not an IP address",
    ),
    ({"links": [], "stats_addr": "localhost"}, "stats_addr: expected host:port"),
    ({"links": [], "pcap": {"x--y": "/tmp/c.pcap"}}, "pcap: no link named 'x--y'"),
]


@pytest.mark.parametrize(("content", "message"), BAD_CONFIGS)
def test_bad_config_fails_cleanly(
    tmp_path: Path, content: str | bytes | dict[str, object] | None, message: str
) -> None:
    path = tmp_path / "bridge.json"
    if isinstance(content, dict):
        path.write_text(json.dumps(content))
    elif isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    result = run_to_exit(path)
    assert result.returncode == 2 and result.stdout == ""
    assert_one_clean_line(result.stderr, message)
    assert result.stderr.startswith(f"newtlink: bad config: {path}: ")


def test_unwritable_capture_file_fails_cleanly(tmp_path: Path) -> None:
    ports = free_ports(2)
    config = {
        "links": [link_config(0, *ports)],
        "pcap": {"a0:eth1--z0:eth1": str(tmp_path / "missing-dir" / "c.pcap")},
    }
    result = run_to_exit(write_config(tmp_path, config))
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, "cannot write capture file")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_zero_and_disconnects(start_bridge: StartBridge, sig: int) -> None:
    bridge = start_bridge()
    a, z = bridge.connect("a"), bridge.connect("z")
    bridge.wait_stats(lambda s: s["connected"])
    assert bridge.terminate(sig) == 0
    assert not Path(bridge.unix).exists()
    for sock in (a, z):
        sock.settimeout(5)
        assert sock.recv(10) == b""  # the peers see the bridge go
        sock.close()
    assert "Traceback" not in bridge.stderr()


def test_sighup_does_not_stop_it(start_bridge: StartBridge) -> None:
    bridge = start_bridge()
    bridge.proc.send_signal(signal.SIGHUP)
    assert bridge.stats()["a"] == "a0:eth1"
    assert process_alive(bridge.proc.pid)


def test_argv_names_the_lab(start_bridge: StartBridge) -> None:
    bridge = start_bridge()
    cmdline = Path(f"/proc/{bridge.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--lab" in cmdline and cmdline[cmdline.index(b"--lab") + 1] == b"nltest"
    assert b"newtlab.newtlink" in cmdline


def test_lab_from_config_when_not_on_the_command_line(tmp_path: Path) -> None:
    ports = free_ports(2)
    unix = str(tmp_path / "s.sock")
    config = {"lab": "fromconfig", "links": [link_config(0, *ports)], "stats_unix": unix}
    bridge = Newtlink(tmp_path, config, argv_for(write_config(tmp_path, config), lab=None))
    try:
        assert bridge.ready_line() == f"READY {bridge.proc.pid}\n"
        assert package.query_stats(unix)["lab"] == "fromconfig"
    finally:
        bridge.kill()


def system_python() -> str | None:
    """A python3 outside this project's venv (where newtlab is not installed)."""
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and not candidate.startswith(sys.prefix):
            version = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info >= (3, 9))"],
                capture_output=True,
                text=True,
                check=False,
            )
            if version.stdout.strip() == "True":
                return candidate
    return None


def test_runs_standalone_from_a_copied_directory(tmp_path: Path) -> None:
    """As shipped to a remote server: the package dir alone, run by a python3 without newtlab."""
    python = system_python()
    if python is None:
        pytest.skip("no python3 outside the venv")
    shutil.copytree(Path(package.__file__).parent, tmp_path / "newtlink")
    ports = free_ports(2)
    config = {
        "lab": "remote",
        "links": [link_config(0, *ports)],
        "stats_unix": str(tmp_path / "s.sock"),
    }
    argv = [python, "-s", "-E", "-m", "newtlink", str(write_config(tmp_path, config))]
    bridge = Newtlink(tmp_path, config, [*argv, "--lab", "remote"])
    try:
        assert bridge.ready_line() == f"READY {bridge.proc.pid}\n", bridge.stderr()
        a, z = bridge.connect("a"), bridge.connect("z")
        bridge.wait_stats(lambda s: s["connected"])
        frames = Frames(12)
        a.sendall(b"".join(frames.frame(seq) for seq in range(100)))
        checker = Checker()
        checker.drain(z, 100, timeout=10)
        assert checker.bad == [] and checker.sequences == list(range(100))
        assert bridge.terminate() == 0
        a.close()
        z.close()
    finally:
        bridge.kill()
