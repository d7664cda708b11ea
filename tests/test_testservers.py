"""The namespace test servers of ``testservers.py``: honest enough to test remote code on."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

import testservers
from testservers import REGISTRY, TestServer, TestServerError, cleanup_stale, servers

pytestmark = pytest.mark.integration

BANNER = (
    "import socket, sys; s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 3); "
    "print(s.recv(64).decode().strip())"
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[TestServer]]:
    with servers(2, tmp_path_factory.mktemp("servers")) as started:
        yield started


def test_each_server_takes_a_real_ssh_login_with_the_test_key(pair: list[TestServer]) -> None:
    for server in pair:
        result = server.ssh("uname -n; id -u", check=True)
        assert result.stdout.split() == [server.name, "0"]
    s1, s2 = pair
    subnet = ipaddress.IPv4Network(f"{s1.client_address}/24", strict=False)
    assert subnet.subnet_of(ipaddress.IPv4Network("198.18.0.0/15"))  # 198.18.0.0/24 when free
    assert [s1.address, s2.address] == [str(subnet[11]), str(subnet[12])]
    assert s1.netns != s2.netns


def test_servers_reach_each_other_and_the_client_over_the_bridge(
    pair: list[TestServer],
) -> None:
    s1, s2 = pair
    # server 1 -> server 2's sshd: a TCP connect across the bridge
    result = s1.run(["/usr/bin/python3", "-c", BANNER, s2.address, "22"], check=True)
    assert result.stdout.startswith("SSH-2.0-OpenSSH")
    # server 2 -> a listener of the client's, on the client's bridge address
    with socket.create_server((s2.client_address, 0)) as listener:
        listener.settimeout(5)
        port = listener.getsockname()[1]
        script = (
            "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)"
            ".sendall(b'hello from ' + socket.gethostname().encode())"
        )
        s2.run(["/usr/bin/python3", "-c", script, s2.client_address, str(port)], check=True)
        conn, (peer, _) = listener.accept()
        with conn:
            assert conn.recv(64) == b"hello from s2"
        assert peer == s2.address


def test_tmp_is_private_to_each_server(pair: list[TestServer]) -> None:
    s1, s2 = pair
    path = f"/tmp/testservers-{secrets.token_hex(4)}"
    s1.ssh(f"echo one > {path}", check=True)
    assert s1.holds_path(path)
    assert s1.run(["cat", path]).stdout == "one\n"
    assert not s2.holds_path(path)
    assert not Path(path).exists()  # nor on the host


def test_newtlab_home_is_private_to_each_server(pair: list[TestServer]) -> None:
    s1, s2 = pair
    name = f"testservers-{secrets.token_hex(4)}"
    s1.ssh(f"mkdir -p ~/.newtlab/{name}", check=True)
    assert s1.holds_path(f"/root/.newtlab/{name}")
    assert not s2.holds_path(f"/root/.newtlab/{name}")
    assert not (Path("/root/.newtlab") / name).exists()


def test_asyncssh_logs_in_uploads_by_sftp_and_forwards_tcp(
    pair: list[TestServer], tmp_path: Path
) -> None:
    s1, s2 = pair
    local = tmp_path / "upload.txt"
    local.write_text("uploaded\n")
    remote = f"/tmp/upload-{secrets.token_hex(4)}.txt"

    async def session() -> tuple[str, bytes]:
        async with asyncssh.connect(
            s1.address,
            port=s1.ssh_port,
            username=s1.user,
            client_keys=[str(s1.identity_file)],
            known_hosts=None,
            agent_path=None,
        ) as conn:
            async with conn.start_sftp_client() as sftp:
                await sftp.put(str(local), remote)
            name = await conn.run("uname -n", check=True)
            reader, writer = await conn.open_connection(s2.address, 22)  # direct-tcpip via s1
            banner = await reader.readline()
            writer.close()
            return str(name.stdout).strip(), banner

    name, banner = asyncio.run(session())
    assert name == s1.name
    assert banner.startswith(b"SSH-2.0-OpenSSH")
    assert s1.run(["cat", remote], check=True).stdout == "uploaded\n"
    assert not s2.holds_path(remote)


def _start_sleep(server: TestServer) -> int:
    """``sleep 1000`` detached over SSH, as the tool starts QEMU; its host PID."""
    before = set(server.pids())
    server.ssh(
        "setsid -f sh -c 'echo $$ > /tmp/sleep.pid; exec sleep 1000' </dev/null >/dev/null 2>&1",
        check=True,
    )  # the SSH session has ended here
    inner = int(server.run(["cat", "/tmp/sleep.pid"], check=True).stdout)
    (pid,) = set(server.pids()) - before
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"1000"]
    status = Path(f"/proc/{pid}/status").read_text()
    assert f"NSpid:\t{pid}\t{inner}\n" in status  # the same process, seen from both sides
    return pid


def test_a_detached_process_outlives_its_session_on_its_own_server(
    pair: list[TestServer],
) -> None:
    s1, s2 = pair
    pid = _start_sleep(s1)
    identify = subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True, text=True)
    assert identify.stdout.strip() == s1.netns
    assert pid not in s2.pids()
    # every command line in the server (no procps needed)
    every = ["sh", "-c", "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <$f; echo; done 2>&-"]
    assert "sleep 1000" in s1.run(every, check=True).stdout
    assert "sleep 1000" not in s2.run(every, check=True).stdout  # not visible from server 2
    os.kill(pid, signal.SIGKILL)


def _start_time(pid: int) -> str | None:
    """``pid``'s start time, None when there is no such process (PIDs wrap fast here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]


def _assert_gone(netns: str, bridge: str, processes: dict[int, str | None]) -> None:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert netns not in listed.stdout
    shown = subprocess.run(["ip", "link", "show", bridge], capture_output=True, text=True)
    assert shown.returncode != 0, shown.stdout
    suffix = bridge.removeprefix("ntsb")
    assert not [link for link in os.listdir("/sys/class/net") if suffix in link]  # veths
    for pid, started in processes.items():
        assert started is not None
        assert _start_time(pid) != started, f"pid {pid} still runs"
    assert netns not in Path("/proc/self/mountinfo").read_text()
    assert not (REGISTRY / f"{suffix}.json").exists()


def test_exit_leaves_nothing_behind_even_on_keyboard_interrupt(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), servers(1, tmp_path) as (server,):
        pid = _start_sleep(server)
        processes = {p: _start_time(p) for p in (pid, server.init_pid, server.sshd_pid)}
        raise KeyboardInterrupt
    _assert_gone(server.netns, server.bridge, processes)


def test_a_server_whose_sshd_never_answers_fails_setup_and_is_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(testservers, "SSHD", "/usr/bin/false")
    before = set(os.listdir("/run/netns"))
    with (
        pytest.raises(TestServerError, match="not ready in 1 s"),
        servers(1, tmp_path, ready_timeout=1),
    ):
        raise AssertionError("not reached")
    assert set(os.listdir("/run/netns")) <= before


def test_cleanup_stale_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    script = (
        "import json, sys, time, testservers\n"
        "with testservers.servers(1, __import__('pathlib').Path(sys.argv[1])) as (s,):\n"
        "    print(json.dumps([s.netns, s.bridge, s.init_pid, s.sshd_pid]), flush=True)\n"
        "    time.sleep(60)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    try:
        assert owner.stdout is not None
        netns, bridge, init_pid, sshd_pid = json.loads(owner.stdout.readline())
        processes = {init_pid: _start_time(init_pid), sshd_pid: _start_time(sshd_pid)}
    finally:
        owner.send_signal(signal.SIGKILL)  # no teardown
        owner.wait()
    assert Path("/run/netns", netns).exists()
    cleanup_stale()
    _assert_gone(netns, bridge, processes)
