"""Booting newtlab's host image by hand: QEMU, its serial console, SSH, a link relay.

Deliberately independent of newtlab's runtime, so these tests check the
image's own contract (``platform.json``) rather than the orchestrator.
Every QEMU runs in its own session and is killed with its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from newtlab.image import host_platform
from newtlab.image.build import KERNEL_CMDLINE
from newtlab.runtime.console import fill

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before in this run: the kernel may give a port
    just released again, and a VM's QEMU binds its ports only once it runs."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def mac(vm: int, nic: int) -> str:
    return f"52:54:00:4e:{vm:02x}:{nic:02x}"


class Relay:
    """Joins two QEMU ``-netdev socket,connect=`` NICs: one TCP listener per side."""

    def __init__(self) -> None:
        self.listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
        self.ports = [int(s.getsockname()[1]) for s in self.listeners]
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.conns = [listener.accept()[0] for listener in self.listeners]
        except OSError:
            return
        a, b = self.conns
        threading.Thread(target=self._pump, args=(b, a), daemon=True).start()
        self._pump(a, b)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)

    def close(self) -> None:
        for sock in [*self.listeners, *self.conns]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@dataclass
class Vm:
    """One QEMU booting an overlay of the image; NIC 0 is user-mode mgmt with SSH forwarded."""

    name: str
    image: Path
    workdir: Path
    index: int = 0
    drivers: list[str] = field(default_factory=lambda: ["virtio-net-pci", "virtio-net-pci"])
    connects: dict[int, int] = field(default_factory=dict)  # data NIC -> relay port
    memory: int = 128
    rng: bool = True
    disk: str = "virtio"
    # (vmlinux, initrd): started directly, as the image's platform does; None: from the disk.
    kernel: tuple[Path, Path] | None = None
    console_port: int = 0
    ssh_port: int = 0
    qmp_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    @property
    def console_log(self) -> Path:
        return self.workdir / f"{self.name}.console.log"

    def argv(self) -> list[str]:
        overlay = self.workdir / f"{self.name}.qcow2"
        argv = [
            "qemu-system-x86_64",
            "-name",
            f"newtlab-image-test:{self.name}",
            "-machine",
            "pc",
            "-accel",
            "tcg",
            "-m",
            str(self.memory),
            "-smp",
            "1",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-drive",
            f"file={overlay},if={self.disk},format=qcow2",
            "-chardev",
            f"socket,id=s0,host=127.0.0.1,port={self.console_port},server=on,wait=off,"
            f"logfile={self.console_log}",
            "-serial",
            "chardev:s0",
            "-qmp",
            f"tcp:127.0.0.1:{self.qmp_port},server=on,wait=off",
            "-monitor",
            "none",
            "-netdev",
            f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
        ]
        for i, driver in enumerate(self.drivers):
            device = f"{driver},mac={mac(self.index, i)},romfile="
            if i == 0:
                device += ",netdev=n0"
            elif i in self.connects:
                argv += ["-netdev", f"socket,id=n{i},connect=127.0.0.1:{self.connects[i]}"]
                device += f",netdev=n{i}"
            argv += ["-device", device]
        if self.rng:
            argv += ["-device", "virtio-rng-pci"]
        if self.kernel:
            vmlinux, initrd = self.kernel
            argv += ["-kernel", str(vmlinux), "-initrd", str(initrd), "-append", KERNEL_CMDLINE]
        return argv

    def start(self) -> None:
        overlay = self.workdir / f"{self.name}.qcow2"
        backing = str(self.image.resolve())  # absolute: relative ones resolve from the overlay
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, str(overlay)],
            check=True,
        )
        self.console_port, self.ssh_port, self.qmp_port = free_port(), free_port(), free_port()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / f"{self.name}.stderr").open("wb"),
            start_new_session=True,
        )

    def stderr_tail(self) -> str:
        path = self.workdir / f"{self.name}.stderr"
        said = path.read_text(errors="replace").strip() if path.exists() else ""
        return said[-500:] or "(nothing on stderr)"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def qmp(self, command: str) -> None:
        with socket.create_connection(("127.0.0.1", self.qmp_port), timeout=10) as sock:
            reader = sock.makefile("rb")
            reader.readline()  # greeting
            for execute in ("qmp_capabilities", command):
                sock.sendall(json.dumps({"execute": execute}).encode() + b"\n")
                while "return" not in (reply := json.loads(reader.readline())):
                    if "error" in reply:
                        raise RuntimeError(f"QMP {execute}: {reply['error']}")


class Console:
    """The serial console as the image's platform.json describes it."""

    def __init__(self, vm: Vm, timeout: float = 60) -> None:
        self.vm = vm
        self.contract: dict[str, Any] = host_platform()["vm_console"]
        self.buffer = b""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", vm.console_port), timeout=2)
                break
            except OSError:
                if vm.proc is not None and vm.proc.poll() is not None:
                    raise RuntimeError(f"QEMU of {vm.name} exited: {vm.stderr_tail()}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._serial = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def expect(self, pattern: str, timeout: float, nudge: bool = False) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        last_nudge = 0.0
        while True:
            text = _ANSI.sub(b"", self.buffer).decode(errors="replace")
            match = regex.search(text)
            if match:
                self.buffer = text[match.end() :].encode()
                return match
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"no {pattern!r} on the console; last output: {text[-400:]!r}")
            if nudge and now - last_nudge > 1.5:
                self.send("\r")  # output before we connected is lost: ask for a fresh prompt
                last_nudge = now
            self.sock.settimeout(min(0.5, deadline - now))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise ConnectionError("the console closed")
            self.buffer += chunk

    def login(self, user: str, password: str, timeout: float = 60) -> tuple[float, bool]:
        """Get to the shell prompt as newtlab's deploy does, logging in only if the
        console asks: (the VM's age at the first prompt, whether a password was typed)."""
        shell = self.contract["shell_prompt"]
        login = self.contract.get("login_prompt")
        first = self.expect(f"(?P<login>{login})|{shell}" if login else shell, timeout, nudge=True)
        at = self.vm.elapsed()
        if not first.groupdict().get("login"):
            return at, False
        self.send(user + "\r")
        self.expect(self.contract["password_prompt"], 10)
        self.send(password + "\r")
        self.expect(shell, 10)
        return at, True

    def run(self, command: str, timeout: float = 60) -> tuple[int, str]:
        """Run one command at the shell prompt: (exit status, output)."""
        self._serial += 1
        marker = f"RC{self._serial}X"
        typed = f'R""C{self._serial}X=$?'
        self.send(f"{command}; echo {typed}\r")
        match = self.expect(rf"{marker}=(\d+)\r?\n", timeout)
        before = match.string[: match.start()]
        before = before[before.rfind(typed) + len(typed) :] if typed in before else before
        self.expect(self.contract["shell_prompt"], 10)
        return int(match.group(1)), before.replace("\r", "").strip()

    def bootstrap(
        self, values: dict[str, str], lists: tuple[str, ...] = ("bootstrap", "install_key")
    ) -> list[tuple[str, int, str]]:
        """Run the platform's command lists, filled in as newtlab's deploy fills them."""
        done = []
        for template in [t for name in lists for t in self.contract.get(name, [])]:
            command = fill(template, values)
            status, output = self.run(command)
            done.append((command, status, output))
            if status != 0:
                raise AssertionError(f"{command!r} failed ({status}): {output}")
        return done


# newtlab's own client preference (ed25519 first); None: asyncssh's defaults (RSA first).
ED25519_FIRST = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]


async def _ssh(
    port: int,
    command: str,
    key: asyncssh.SSHKey | None,
    password: str | None,
    user: str,
    host_key_algs: list[str] | None,
) -> asyncssh.SSHCompletedProcess:
    options: dict[str, Any] = {"server_host_key_algs": host_key_algs} if host_key_algs else {}
    async with asyncssh.connect(
        "127.0.0.1",
        port,
        username=user,
        password=password,
        client_keys=[key] if key else None,
        known_hosts=None,
        agent_path=None,
        # A client that asks for RSA first waits while the guest makes that key, on
        # demand: ~5 s on a quiet machine under TCG, over 10 s beside booting guests.
        connect_timeout=10 if host_key_algs else 60,
        login_timeout=20 if host_key_algs else 60,
        **options,
    ) as conn:
        return await conn.run(command, check=False, timeout=60)


def ssh(
    vm: Vm,
    command: str,
    key: asyncssh.SSHKey | None = None,
    password: str | None = None,
    user: str = "root",
    host_key_algs: list[str] | None = ED25519_FIRST,
) -> asyncssh.SSHCompletedProcess:
    """Run ``command`` over SSH (a real login) with ``key`` or ``password``."""
    return asyncio.run(_ssh(vm.ssh_port, command, key, password, user, host_key_algs))


def ssh_ok(vm: Vm, command: str, key: asyncssh.SSHKey, user: str = "root") -> str:
    result = ssh(vm, command, key, user=user)
    assert result.exit_status == 0, f"{command!r} on {vm.name}: {result.stderr!r}"
    return str(result.stdout)


@contextlib.contextmanager
def vms(*machines: Vm) -> Iterator[tuple[Vm, ...]]:
    """Start the machines; kill every one on the way out, whatever happened."""
    try:
        for machine in machines:
            machine.start()
        yield machines
    finally:
        for machine in machines:
            machine.kill()
