"""A private libvirtd for tests: a real daemon, started here, sharing nothing with the
machine's own libvirt (newtlab never edits a user's libvirt configuration, nor do its tests).

``private_libvirtd(root)`` runs ``virtlogd`` and ``libvirtd`` in a mount namespace of
their own where ``/etc/libvirt``, ``/run/libvirt``, ``/var/lib/libvirt``,
``/var/cache/libvirt`` and ``/var/log/libvirt`` are directories under ``root`` (so two
daemons never share a socket or pidfile), with a ``qemu.conf`` that lets a TCG domain
run inside a container (measured: it hangs paused otherwise) and as root (files under a
0700 ``NEWTLAB_HOME``). It yields a ``Libvirtd``: the URI that reaches it from outside
the namespace (``qemu:///system?socket=ROOT/run/libvirt-sock``), and how to run a command
inside it (where ``/var/log/libvirt`` is its own). At exit every domain it still runs is
destroyed and both daemons are stopped and reaped, whatever the test did.

Requires root, ``util-linux`` (``unshare``) and Debian's ``libvirt-daemon-system``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from testservers import mount_points, mount_propagation

if TYPE_CHECKING:
    from testservers import TestServer

PRIVATE = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt",
           "cache": "/var/cache/libvirt", "log": "/var/log/libvirt"}  # fmt: skip
QEMU_CONF = """
namespaces = [ ]
cgroup_controllers = [ ]
security_driver = "none"
user = "root"
group = "root"
"""
# The shell stays as the daemons' parent: on TERM it stops them and reaps them.
SCRIPT = """
set -e
{mounts}
virtlogd -p /run/libvirt/virtlogd.pid & V=$!
libvirtd -p /run/libvirt/libvirtd.pid & L=$!
trap 'kill $L $V 2>/dev/null; wait' TERM
wait
"""


# The same daemon inside a test server (tests/testservers.py): its mount namespace is already
# its own, so the private directories are mounted over libvirt's there, and its init reaps.
SERVER_SCRIPT = """
set -e
R=/run/newtlab-test-libvirt
mkdir -p $R/lib $R/cache $R/log /run/libvirt
cp -a /etc/libvirt $R/etc
cat >> $R/etc/qemu.conf <<'CONF'
{qemu_conf}
CONF
mount --bind $R/etc /etc/libvirt
mount --bind $R/lib /var/lib/libvirt
mount --bind $R/cache /var/cache/libvirt
mount --bind $R/log /var/log/libvirt
virtlogd -d -p /run/libvirt/virtlogd.pid
libvirtd -d -p /run/libvirt/libvirtd.pid
for i in $(seq 100); do [ -S /run/libvirt/libvirt-sock ] && exit 0; sleep 0.1; done
echo "libvirtd did not make its socket" >&2; exit 1
"""


def start_in_server(server: TestServer) -> None:
    """A private libvirtd in ``server``, at libvirt's usual socket there (so
    ``qemu+ssh://root@ADDRESS/system`` reaches it); it ends with the server."""
    done = server.run(["sh", "-c", SERVER_SCRIPT.format(qemu_conf=QEMU_CONF)], timeout=60)
    assert done.returncode == 0, f"libvirtd in {server.name}: {done.stderr}"


def _virsh(uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True, timeout=60)


@dataclass(frozen=True)
class Libvirtd:
    uri: str
    pid: int  # of the shell that is the daemons' parent, in their mount namespace

    def inside(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in the daemons' mount namespace, from their root and directory (in a
        chroot, entering a mount namespace alone puts a process at the machine's real root)."""
        return ["nsenter", "-t", str(self.pid), "-m", "-r", "-w", "--", *argv]


@contextlib.contextmanager
def private_libvirtd(root: Path) -> Iterator[Libvirtd]:
    for name in PRIVATE:
        (root / name).mkdir(parents=True, exist_ok=True)
    shutil.rmtree(root / "etc")
    shutil.copytree("/etc/libvirt", root / "etc", symlinks=True)
    with (root / "etc" / "qemu.conf").open("a") as conf:
        conf.write(QEMU_CONF)
    for target in PRIVATE.values():
        Path(target).mkdir(parents=True, exist_ok=True)  # where the private ones are mounted
    mounts = "\n".join(f"mount --bind {root / name} {target}" for name, target in PRIVATE.items())
    before = mount_points()
    daemons = subprocess.Popen(
        ["unshare", "--mount", *mount_propagation(), "sh", "-c", SCRIPT.format(mounts=mounts)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    uri = f"qemu:///system?socket={root / 'run' / 'libvirt-sock'}"
    try:
        deadline = time.monotonic() + 30
        while _virsh(uri, "version").returncode != 0:
            if daemons.poll() is not None:
                why = daemons.stderr.read().decode(errors="replace") if daemons.stderr else ""
                raise AssertionError(f"libvirtd did not start: {why}")
            assert time.monotonic() < deadline, "libvirtd did not answer in 30 s"
            time.sleep(0.2)
        leaked = mount_points() - before  # unshare in a chroot keeps the mounts' propagation
        assert not leaked, f"the test libvirtd's mounts reached this namespace: {sorted(leaked)}"
        yield Libvirtd(uri, daemons.pid)
    finally:
        listed = _virsh(uri, "list", "--name").stdout.split()
        for domain in listed:
            _virsh(uri, "destroy", domain)
        for domain in _virsh(uri, "list", "--all", "--name").stdout.split():
            _virsh(uri, "undefine", domain)
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemons.pid, signal.SIGTERM)
        try:
            daemons.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemons.pid, signal.SIGKILL)
            daemons.wait()
