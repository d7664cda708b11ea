"""Honest multi-host test "servers" on this one machine, for tests of remote (SSH) code.

``servers(count, tmp)`` gives ``count`` servers that each have

- their own network namespace, joined to the client (this, the root, namespace) by a
  veth pair on a Linux bridge: the client is ``198.18.N.1``, the servers ``.11``, ``.12``,
  ... of the same /24 (RFC 2544 benchmarking range; ``N`` is the first free /24);
- their own mount, PID and UTS namespaces (hostname = ``name``), with private tmpfs on
  ``/tmp``, ``/var/tmp``, ``~/.newtlab``, ``/run`` and ``/dev/shm``, so a file the code
  under test forgot to upload is *not* there, and a remote path used locally fails;
- an init (PID 1 of the server) that reaps orphans, and a real OpenSSH ``sshd`` on
  ``ADDRESS:22`` that accepts root's test key only (a key pair generated under ``tmp``);

and the rest of the filesystem shared with the host (binaries, images, ``/dev/kvm``).

Everything is named with a random suffix, and recorded in ``/run/newtlab-testservers``
so a later run removes what a killed run left behind (never what a live run owns).
Requires root, ``iproute2``, ``util-linux`` (``unshare``, ``nsenter``), ``openssh-server``
and ``openssh-client``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import json
import os
import pwd
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SSHD = "/usr/sbin/sshd"
PYTHON = "/usr/bin/python3"  # not a pyenv shim: the server's init runs with this
REGISTRY = Path("/run/newtlab-testservers")
NETNS_RUN = "/run/netns"
BENCHMARK_NET = ipaddress.IPv4Network("198.18.0.0/15")
SERVER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SSH_OPTIONS = (
    "-F",
    "/dev/null",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "IdentityAgent=none",
    "-o",
    "ConnectTimeout=5",
    "-o",
    "LogLevel=ERROR",
)


class TestServerError(RuntimeError):
    """A test server could not be started, or not everything could be cleaned up."""

    __test__ = False  # not a pytest test class


@dataclass(kw_only=True)
class TestServer:
    """One server: reach it at ``user@address:ssh_port`` with ``identity_file``."""

    __test__ = False  # not a pytest test class

    name: str
    address: str
    netns: str
    identity_file: Path
    ssh_port: int = 22
    user: str = "root"
    client_address: str = ""  # the client's (root namespace's) address on the bridge
    bridge: str = ""  # the bridge in the root namespace that joins the servers
    init_pid: int = 0  # host PID of the server's PID 1
    sshd_pid: int = 0  # host PID of its listening sshd
    log: Path = field(default_factory=Path)  # init's and sshd's output
    _infra: frozenset[int] = frozenset()  # the unshare parent, init and sshd
    _init_start: int = 0  # init's start time, against PID reuse once it is gone

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = False,
        input: str | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the server (its network, mount, PID, UTS namespaces) from ``/``."""
        if not self.init_pid or _start_time(self.init_pid) != self._init_start:
            raise TestServerError(f"{self.name} is not running")
        return subprocess.run(
            [
                "nsenter",
                "-t",
                str(self.init_pid),
                "-n",
                "-m",
                "-p",
                "-u",
                "-r",
                "--wd=/",
                "--",
                *argv,
            ],
            check=check,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": SERVER_PATH, "HOME": pwd.getpwnam(self.user).pw_dir, "LANG": "C.UTF-8"},
        )

    def ssh_argv(self, command: str | Sequence[str] = ()) -> list[str]:
        """An ``ssh`` command line that logs in to this server with the test key."""
        cmd = [command] if isinstance(command, str) else list(command)
        return [
            "ssh",
            *SSH_OPTIONS,
            "-i",
            str(self.identity_file),
            "-p",
            str(self.ssh_port),
            f"{self.user}@{self.address}",
            *cmd,
        ]

    def ssh(
        self, command: str | Sequence[str], *, check: bool = False, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on the server over a real SSH login."""
        return subprocess.run(
            self.ssh_argv(command),
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def pids(self) -> list[int]:
        """Host PIDs of the processes in this server, without its init and sshd."""
        return sorted(
            pid
            for pid in _netns_pids(self.netns)
            if pid not in self._infra and not _runs(pid, SSHD)
        )

    def stop_sshd(self) -> None:
        """Make the server unreachable: its listening sshd is killed, so logins are refused."""
        if self.sshd_pid and _runs(self.sshd_pid, SSHD):
            os.kill(self.sshd_pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while self.ssh("true", timeout=5).returncode == 0:
            if time.monotonic() > deadline:
                raise TestServerError(f"{self.name}: sshd still answers")
            time.sleep(0.1)

    def start_sshd(self, timeout: float = 10) -> None:
        """Start sshd again, as its init did, and wait until a login works."""
        sshd = f"exec {SSHD} -D -e -f /run/testserver/sshd_config </dev/null >/dev/null 2>&1"
        self.run(["setsid", "-f", "sh", "-c", sshd], check=True)  # no pipe of ours kept open
        deadline = time.monotonic() + timeout
        while self.ssh("true", timeout=5).returncode != 0:
            if time.monotonic() > deadline:
                raise TestServerError(f"{self.name}: sshd did not come back")
            time.sleep(0.1)
        listening = [pid for pid in _netns_pids(self.netns) if _runs(pid, SSHD)]
        self.sshd_pid = min(listening)  # the listener is the oldest sshd

    def holds_path(self, path: str | Path) -> bool:
        """Whether ``path`` exists in this server's view of the filesystem."""
        return self.run(["test", "-e", str(path)]).returncode == 0


# --- the context manager -------------------------------------------------------------


@contextlib.contextmanager
def servers(count: int, tmp: Path, *, ready_timeout: float = 10.0) -> Iterator[list[TestServer]]:
    """Start ``count`` test servers (files under ``tmp``); tear everything down on exit.

    Teardown always runs (also on exceptions and KeyboardInterrupt), continues past
    errors and then raises one ``TestServerError`` listing what it could not clean.
    """
    if not 1 <= count <= 200:
        raise ValueError(f"count must be 1..200, not {count}")
    _preflight()
    tmp = Path(tmp).absolute()
    tmp.mkdir(parents=True, exist_ok=True)
    key = tmp / "client_key"
    if not key.exists():
        _check(
            ["ssh-keygen", "-t", "ed25519", "-N", "", "-C", "newtlab-test", "-f", str(key), "-q"]
        )
    (tmp / "authorized_keys").write_text((tmp / "client_key.pub").read_text())
    init_py = tmp / "testserver_init.py"
    init_py.write_text(_INIT_PY)

    mounts_before = mount_points()
    suffix = secrets.token_hex(3)
    names = [f"s{i}" for i in range(1, count + 1)]
    res = _Resources(
        bridge=f"ntsb{suffix}",
        netns=[f"ntsrv-{suffix}-{n}" for n in names],
        veths=[f"nts{suffix}{n}" for n in names],
    )
    wrappers: list[subprocess.Popen[bytes]] = []
    try:
        with _registry() as registry:
            _reap_stale(registry)
            subnet = _free_subnet()
            record = registry / f"{suffix}.json"
            record.write_text(json.dumps({**_owner(), **res.as_dict()}))
            client = str(subnet.network_address + 1)
            _check(["ip", "link", "add", res.bridge, "type", "bridge"])
            _check(["ip", "addr", "add", f"{client}/{subnet.prefixlen}", "dev", res.bridge])
            _check(["ip", "link", "set", res.bridge, "up"])
        home = Path(pwd.getpwnam("root").pw_dir)
        (home / ".newtlab").mkdir(exist_ok=True)  # the mount point of each server's tmpfs
        result: list[TestServer] = []
        for i, (name, ns, veth) in enumerate(zip(names, res.netns, res.veths, strict=True)):
            address = str(subnet.network_address + 11 + i)
            _check(["ip", "netns", "add", ns])
            _check(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
            _check(["ip", "link", "set", veth, "master", res.bridge, "up"])
            inside = _in_netns(ns)
            _check([*inside, "ip", "addr", "add", f"{address}/{subnet.prefixlen}", "dev", "eth0"])
            _check([*inside, "ip", "link", "set", "eth0", "up"])
            _check([*inside, "ip", "link", "set", "lo", "up"])
            server = TestServer(
                name=name,
                address=address,
                netns=ns,
                identity_file=key,
                client_address=client,
                bridge=res.bridge,
                log=tmp / name / "init.log",
            )
            wrappers.append(_start(server, tmp, init_py, home))
            result.append(server)
        _wait_ready(result, wrappers, ready_timeout)
        leaked = {  # /run/netns and the namespaces in it are iproute2's, not the servers'
            m for m in mount_points() - mounts_before if m.split("/")[:3] != ["", "run", "netns"]
        }
        if leaked:  # a server's private mounts showed up here: unsafe, stop now
            raise TestServerError(f"test servers' mounts reached this namespace: {sorted(leaked)}")
        yield result
    finally:
        with _sigint_deferred():
            failures = _teardown(res, wrappers)
            if not failures:
                (REGISTRY / f"{suffix}.json").unlink(missing_ok=True)
            # ip netns add makes /run/netns a mount point; undo that if it was ours.
            netns_run = Path(NETNS_RUN)
            if str(netns_run) not in mounts_before and not any(netns_run.glob("*")):
                _try(["umount", NETNS_RUN])
        if failures:
            raise TestServerError("test servers not cleaned up: " + "; ".join(failures))


def cleanup_stale() -> None:
    """Remove what killed runs left behind (runs whose owner process is gone)."""
    with _registry() as registry:
        _reap_stale(registry)


# --- setup ---------------------------------------------------------------------------


def _preflight() -> None:
    if os.geteuid() != 0:
        raise TestServerError("test servers need root (network and mount namespaces)")
    for path in (SSHD, PYTHON):
        if not os.access(path, os.X_OK):
            raise TestServerError(f"{path} is missing (apt-get install openssh-server python3)")


def _start(server: TestServer, tmp: Path, init_py: Path, home: Path) -> subprocess.Popen[bytes]:
    state = tmp / server.name
    state.mkdir(exist_ok=True)
    host_key = state / "ssh_host_ed25519_key"
    host_key.unlink(missing_ok=True)
    host_key.with_suffix(".pub").unlink(missing_ok=True)
    _check(["ssh-keygen", "-t", "ed25519", "-N", "", "-C", server.name, "-f", str(host_key), "-q"])
    (state / "sshd_config").write_text(_sshd_config(server.address, server.ssh_port))
    config = {
        "hostname": server.name,
        "log": str(server.log),
        "sshd": SSHD,
        # copied into the server's private /run before the tmpfs mounts hide ``tmp``
        "files": {
            "sshd_config": str(state / "sshd_config"),
            "ssh_host_ed25519_key": str(host_key),
            "authorized_keys": str(tmp / "authorized_keys"),
        },
        "tmpfs": [
            ["/run", "0755"],
            ["/tmp", "1777"],
            ["/var/tmp", "1777"],
            [str(home / ".newtlab"), "0755"],
            ["/dev/shm", "1777"],
        ],
    }
    (state / "init.json").write_text(json.dumps(config))
    argv = [*_in_netns(server.netns), "unshare", "--mount", *mount_propagation(), "--uts", "--pid"]
    argv += ["--fork", "--mount-proc", PYTHON, str(init_py), str(state / "init.json")]
    with open(server.log, "wb") as log:  # unshare's and init's errors too
        # Own session: a Ctrl-C at the terminal reaches pytest (which tears down), not the servers.
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )


@functools.cache
def mount_propagation() -> list[str]:
    """``unshare`` options for a private mount namespace (the servers', a test libvirtd's).

    By default unshare makes every mount private, which needs ``/`` to be a mount
    point. In a chroot it is not: there the mounts keep their propagation, and the
    callers check that none of their mounts reached this namespace.
    """
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0 and "propagation" in probe.stderr:
        return ["--propagation", "unchanged"]
    return []


def mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as handle:
        return {line.split()[4] for line in handle}


def _in_netns(ns: str) -> list[str]:
    """A command prefix that runs in network namespace ``ns``, and changes nothing else.

    Not ``ip -n``/``ip netns exec``: they also remount ``/`` and ``/sys``, which fails
    where ``/`` is not a mount point (a chroot).
    """
    return ["nsenter", f"--net=/run/netns/{ns}", "--"]


def _sshd_config(address: str, port: int) -> str:
    # A config of our own (not /etc/ssh/sshd_config): the host's may hold anything.
    return f"""\
ListenAddress {address}
Port {port}
HostKey /run/testserver/ssh_host_ed25519_key
AuthorizedKeysFile /run/testserver/authorized_keys
PidFile none
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowTcpForwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
"""


def _wait_ready(
    servers: list[TestServer], wrappers: list[subprocess.Popen[bytes]], timeout: float
) -> None:
    """Wait until every server's sshd completes a real login with the test key."""
    deadline = time.monotonic() + timeout
    pending = dict(enumerate(servers))
    last: dict[int, str] = {}
    while True:
        for i, server in pending.items():
            if wrappers[i].poll() is not None:
                raise TestServerError(
                    f"{server.name}: init exited with {wrappers[i].returncode}\n{_tail(server.log)}"
                )
        probes: dict[int, subprocess.Popen[str]] = {}
        for i, server in pending.items():
            if not server.init_pid:
                server.init_pid = _first_child(wrappers[i].pid)
                server._init_start = _start_time(server.init_pid) if server.init_pid else 0
            if server.init_pid and not server.sshd_pid:
                children = _children(server.init_pid)
                server.sshd_pid = next((p for p in children if _runs(p, SSHD)), 0)
            if server.sshd_pid:  # probe all servers at once: a login takes ~0.5 s here
                probes[i] = subprocess.Popen(
                    server.ssh_argv("true"),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
        for i, probe in probes.items():
            try:
                _, err = probe.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                probe.kill()
                _, err = probe.communicate()
            if probe.returncode == 0:
                server = pending.pop(i)
                server._infra = frozenset({wrappers[i].pid, server.init_pid, server.sshd_pid})
            else:
                last[i] = err.strip() or f"ssh exited {probe.returncode}"
        if not pending:
            return
        if time.monotonic() > deadline:
            details = "\n".join(
                f"{s.name} ({s.address}): {last.get(i, 'sshd not started')}\n{_tail(s.log)}"
                for i, s in pending.items()
            )
            raise TestServerError(f"test servers not ready in {timeout:g} s:\n{details}")
        time.sleep(0.05)


# --- teardown ------------------------------------------------------------------------


@dataclass
class _Resources:
    bridge: str
    netns: list[str]
    veths: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"bridge": self.bridge, "netns": self.netns, "veths": self.veths}


def _teardown(res: _Resources, wrappers: Sequence[subprocess.Popen[bytes]] = ()) -> list[str]:
    """Remove everything in ``res``; idempotent; the list of what could not be removed."""
    failures: list[str] = []
    # Kill each server's init: the kernel then kills everything in its PID namespace, and
    # its unshare parent reaps it and exits. Killing that parent too would orphan the dead
    # init to the host's PID 1, which may never reap it.
    for ns in res.netns:
        for pid in _netns_pids(ns):
            if _ns_pid(pid) == 1:
                _kill_in_netns(pid, ns)
    for wrapper in wrappers:  # our own children: reap them
        try:
            wrapper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            wrapper.kill()
            try:
                wrapper.wait(timeout=2)
            except subprocess.TimeoutExpired:
                failures.append(f"pid {wrapper.pid} (unshare) did not exit")
    for ns in res.netns:  # whatever else joined the netns (or a stale run's unshare parents)
        failures += _empty_netns(ns)
    for link in [*res.veths, res.bridge]:  # a veth goes with its peer, and vice versa
        if Path("/sys/class/net", link).exists():
            error = _try(["ip", "link", "del", link])
            if error and _present(Path("/sys/class/net", link)):
                failures += error
    for ns in res.netns:
        if Path("/run/netns", ns).exists():
            error = _try(["ip", "netns", "del", ns])
            if error and _present(Path("/run/netns", ns)):
                failures += error
    mounts = Path("/proc/self/mountinfo").read_text()
    failures += [f"mount left: {ns}" for ns in res.netns if f"/{ns} " in mounts]
    return failures


def _present(path: Path, grace: float = 1.0) -> bool:
    """Whether ``path`` is still there after ``grace`` seconds (the kernel removes some lazily)."""
    deadline = time.monotonic() + grace
    while path.exists():
        if time.monotonic() > deadline:
            return True
        time.sleep(0.02)
    return False


def _empty_netns(ns: str, grace: float = 1.0) -> list[str]:
    """Let the processes in ``ns`` exit for ``grace`` seconds, then SIGKILL what is left."""
    if not Path("/run/netns", ns).exists():
        return []
    start = time.monotonic()
    while _netns_pids(ns) and time.monotonic() < start + grace:
        time.sleep(0.02)
    while time.monotonic() < start + grace + 5:
        pids = _netns_pids(ns)
        if not pids:
            return []
        for pid in sorted(pids, key=lambda p: _ns_pid(p) != 1):  # PID-namespace inits first
            _kill_in_netns(pid, ns)
        time.sleep(0.02)
    return [f"processes still in {ns}: {sorted(_netns_pids(ns))}"]


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C back until teardown is done (then raise it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


# --- the registry of live runs, for stale cleanup and free subnets -------------------


@contextlib.contextmanager
def _registry() -> Iterator[Path]:
    REGISTRY.mkdir(mode=0o700, exist_ok=True)
    with open(REGISTRY / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield REGISTRY


def _owner() -> dict[str, int]:
    return {"owner": os.getpid(), "owner_start": _start_time(os.getpid())}


def _reap_stale(registry: Path) -> None:
    for record in registry.glob("*.json"):
        try:
            data = json.loads(record.read_text())
            if _start_time(int(data["owner"])) == int(data["owner_start"]):
                continue  # its owner is alive: not ours to touch
            res = _Resources(bridge=data["bridge"], netns=data["netns"], veths=data["veths"])
        except (OSError, ValueError, KeyError, TypeError):
            record.unlink(missing_ok=True)
            continue
        if not _teardown(res):
            record.unlink(missing_ok=True)


def _free_subnet() -> ipaddress.IPv4Network:
    """The first /24 of 198.18.0.0/15 that no interface or route here uses."""
    out = _check(["ip", "-4", "-o", "addr", "show"]) + _check(["ip", "-4", "route", "show"])
    used: list[ipaddress.IPv4Network] = []
    for word in out.split():
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(word, strict=False)
            if isinstance(net, ipaddress.IPv4Network) and net.overlaps(BENCHMARK_NET):
                used.append(net)
    for subnet in BENCHMARK_NET.subnets(new_prefix=24):
        if not any(subnet.overlaps(u) for u in used):
            return subnet
    raise TestServerError("no free /24 left in 198.18.0.0/15")


# --- /proc and command helpers -------------------------------------------------------


def _check(argv: Sequence[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise TestServerError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr}")
    return result.stdout


def _try(argv: Sequence[str]) -> list[str]:
    try:
        _check(argv)
    except (TestServerError, OSError, subprocess.TimeoutExpired) as exc:
        return [str(exc).strip()]
    return []


def _netns_pids(ns: str, candidates: Sequence[int] | None = None) -> set[int]:
    """What ``ip netns pids NS`` prints: the processes (of ``candidates``) in netns ``ns``."""
    try:
        target = os.stat(f"/run/netns/{ns}")
    except OSError:
        return set()
    if candidates is None:
        candidates = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    pids: set[int] = set()
    for pid in candidates:
        with contextlib.suppress(OSError):
            st = os.stat(f"/proc/{pid}/ns/net")
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                pids.add(pid)
    return pids


def _kill_in_netns(pid: int, ns: str) -> None:
    """SIGKILL ``pid`` if it is (still) in ``ns``: PIDs wrap fast here (pid_max 32768)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return  # gone already
    try:
        if _netns_pids(ns, [pid]):  # checked after pinning the process with its pidfd
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    finally:
        os.close(pidfd)


def _runs(pid: int, program: str) -> bool:
    """Whether ``pid`` runs ``program``, compared by file identity: the link's text is
    not a path of ours for a process in another mount namespace under a chroot."""
    try:
        running, wanted = os.stat(f"/proc/{pid}/exe"), os.stat(program)
    except OSError:
        return False
    return (running.st_dev, running.st_ino) == (wanted.st_dev, wanted.st_ino)


def _stat(pid: int) -> list[str]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def _start_time(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[19]) if fields else -1


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and int(fields[1]) == pid:
                children.append(int(entry))
    return children


def _first_child(pid: int) -> int:
    children = _children(pid)
    return children[0] if children else 0


def _ns_pid(pid: int) -> int:
    """``pid``'s PID in its innermost PID namespace (1 for a server's init)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return pid


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- the init each server runs as its PID 1 ------------------------------------------

_INIT_PY = r'''"""PID 1 of a newtlab test server: private tmpfs mounts, sshd, then reap orphans."""
import json
import os
import signal
import socket
import subprocess
import sys

config = json.load(open(sys.argv[1]))
log = open(config["log"], "ab", buffering=0)  # opened before the mounts hide it
files = {name: open(path, "rb").read() for name, path in config["files"].items()}


def say(message):
    log.write(f"init: {message}\n".encode())


for target, mode in config["tmpfs"]:
    if os.path.isdir(target):
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"mode={mode},nosuid,nodev", "tmpfs", target],
            check=True, stdout=log, stderr=log,
        )
for directory, mode in (("/run/sshd", 0o755), ("/run/lock", 0o1777), ("/run/testserver", 0o700)):
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, mode)
for name, data in files.items():
    fd = os.open(f"/run/testserver/{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.close(fd)

socket.sethostname(config["hostname"])
os.chdir("/")
sshd = subprocess.Popen(
    [config["sshd"], "-D", "-e", "-f", "/run/testserver/sshd_config"],
    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
)
say(f"sshd started, pid {sshd.pid}")

# Reap every child and orphan; SIGCHLD stays blocked so none is missed between
# the last waitpid and the wait for the next signal.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
while True:
    try:
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            if pid == sshd.pid:
                say(f"sshd exited: status {status}")
    except ChildProcessError:
        pass
    signal.sigtimedwait({signal.SIGCHLD}, 5)
'''
