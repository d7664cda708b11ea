"""newtlab's host image: its build, console, SSH, file transfer, NICs, links, the KVM probe.

The integration tests boot the image by hand (imagekit), as newtlab's deploy
would: a qcow2 overlay, the serial console on a TCP port, a user-mode mgmt
NIC with SSH forwarded, under TCG. Timing figures are printed (``-s`` shows
them); the asserted bounds are deliberately generous.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import asyncssh
import pytest

from image.build import cache_root
from image.imagekit import ED25519_FIRST, Console, Relay, Vm, mac, ssh, ssh_ok, vms
from newtlab.image import (
    PROBE_MARKER,
    ROOT_PASSWORD,
    ROOT_USER,
    BuiltImage,
    ImageBuildError,
    build_host_image,
    host_platform,
)
from newtlab.image.cpio import Entry, archive
from newtlab.plan.dialogs import DIALOG_VARIABLES
from newtlab.spec.models import PlatformSpec

GUEST = Path(__file__).parents[2] / "src" / "newtlab" / "image" / "guest"
integration = pytest.mark.integration


@pytest.fixture(scope="session")
def built() -> BuiltImage:
    root = cache_root()
    return build_host_image(root / "images", root / "downloads", lambda line: None)


@pytest.fixture(scope="session")
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519", comment="image-test")


def public_line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


# -- without QEMU ---------------------------------------------------------------------------


def test_platform_entry_is_a_valid_newtlab_platform() -> None:
    entry = host_platform()
    platform = PlatformSpec.model_validate(entry)
    assert platform.vm_credentials is not None
    assert (platform.vm_credentials.user, platform.vm_credentials.password) == (
        ROOT_USER,
        ROOT_PASSWORD,
    )
    assert platform.vm_image.endswith("/newtlab-host.qcow2")
    assert "virtio-rng-pci" in platform.vm_extra_devices
    console = entry["vm_console"]
    for name in ("login_prompt", "password_prompt", "shell_prompt"):
        re.compile(console.get(name) or "")
    assert re.search(console["shell_prompt"], "r1# ") and re.search(console["shell_prompt"], "# ")
    lists = ("set_password", "bootstrap", "create_user", "install_key")
    commands = [command for name in lists for command in console.get(name, [])]
    placeholders = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", " ".join(commands)))
    assert {"ssh_user", "ssh_pubkey", "hostname"} <= placeholders <= set(DIALOG_VARIABLES)


def test_guest_scripts_are_valid_shell() -> None:
    scripts = sorted(GUEST.glob("*.sh"))
    assert len(scripts) >= 11
    for script in scripts:
        result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


@pytest.mark.skipif(shutil.which("cpio") is None, reason="needs cpio(1)")
def test_initramfs_archive_reads_back_with_cpio(tmp_path: Path) -> None:
    entries = [
        Entry("bin", stat.S_IFDIR | 0o755),
        Entry("bin/tool", stat.S_IFREG | 0o755, b"#!/bin/sh\necho hi\n"),
        Entry("sbin/tool", stat.S_IFLNK | 0o777, b"../bin/tool"),
        Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
    ]
    data = archive(entries)
    assert data == archive(list(reversed(entries)))  # order-independent, so reproducible
    listing = subprocess.run(
        ["cpio", "-itv"], input=data, capture_output=True, check=True
    ).stdout.decode()
    assert re.search(r"crw-------.* 5, +1 .*dev/console", listing)
    assert re.search(r"lrwxrwxrwx.*sbin/tool -> \.\./bin/tool", listing)
    assert re.search(r"-rwxr-xr-x.* 18 .*bin/tool", listing)


def test_missing_tools_are_named_with_their_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from newtlab.image import build

    monkeypatch.setattr(shutil, "which", lambda name: None if name == "mformat" else name)
    with pytest.raises(ImageBuildError) as caught:
        build._tools()
    message = str(caught.value)
    assert "mformat not found" in message and "apt-get install mtools" in message


def test_a_library_no_package_holds_is_named_with_its_binary(tmp_path: Path) -> None:
    from newtlab.image import build

    ls = Path(shutil.which("ls") or "/bin/ls").resolve()
    tree = build._Tree()
    tree.file("usr/bin/ls", ls.read_bytes(), 0o755)
    tree.file("etc/motd", b"not an ELF file\n")
    loader = tmp_path / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    loader.parent.mkdir(parents=True)
    loader.write_bytes(b"")  # the loader alone: every other library is missing
    (tmp_path / "lib64").mkdir()
    (tmp_path / "lib64/ld-linux-x86-64.so.2").symlink_to(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    )
    with pytest.raises(
        ImageBuildError, match=r"lib\S+\.so\.\d+, needed by /usr/bin/ls, is in none"
    ):
        build._add_libraries(tree, tmp_path)
    # The loader came in through its symlink, resolved inside the packages, not here.
    assert (
        tree.entries["lib64/ld-linux-x86-64.so.2"].data
        == b"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    )
    assert "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" in tree.entries


@pytest.mark.parametrize(
    "name", ["", "x", "a/b.qcow2", "../x.qcow2", ".x.qcow2", "x.img", "x y.qcow2"]
)
def test_an_image_name_must_be_a_plain_qcow2_file_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ImageBuildError, match=r"plain file name ending in \.qcow2"):
        build_host_image(tmp_path / "images", tmp_path / "cache", name=name)
    assert not (tmp_path / "images").exists()


@pytest.mark.parametrize("can_link", [True, False])
def test_a_named_image_follows_its_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, can_link: bool
) -> None:
    from newtlab.image import build

    def no_hard_links(*args: object) -> None:
        raise OSError("this filesystem has no hard links")

    if not can_link:
        monkeypatch.setattr(os, "link", no_hard_links)
    image = tmp_path / "newtlab-host.qcow2"
    image.write_bytes(b"first build")
    built = BuiltImage(
        image, tmp_path / "k", tmp_path / "p", "key1", tmp_path / "v", tmp_path / "i"
    )
    named = build._named(built, "alpine-testhost.qcow2")
    assert named == dataclasses.replace(built, image=tmp_path / "alpine-testhost.qcow2")
    assert named.image.read_bytes() == b"first build"
    stamp = named.image.stat().st_mtime_ns, named.image.stat().st_ino
    assert build._named(built, "alpine-testhost.qcow2") == named  # current: left alone
    assert (named.image.stat().st_mtime_ns, named.image.stat().st_ino) == stamp
    rebuilt = tmp_path / "new.qcow2"
    rebuilt.write_bytes(b"second build")
    os.utime(rebuilt, ns=(1, 2))
    os.replace(rebuilt, image)  # what a rebuild does
    assert build._named(built, "alpine-testhost.qcow2").image.read_bytes() == b"second build"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "alpine-testhost.qcow2",
        "newtlab-host.qcow2",
    ]


# -- the build ------------------------------------------------------------------------------


@integration
def test_a_failed_build_leaves_nothing_half_written(
    built: BuiltImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newtlab.image import build

    def broken(*args: object) -> Path:
        raise ImageBuildError("the disk could not be made")

    monkeypatch.setattr(build, "_boot_disk", broken)
    dest = tmp_path / "images"
    with pytest.raises(ImageBuildError, match="the disk could not be made"):
        build_host_image(dest, cache_root() / "downloads", lambda line: None)
    assert [p.name for p in dest.iterdir()] == [".newtlab-host.lock"]


@integration
def test_a_current_image_is_reused_at_once(built: BuiltImage) -> None:
    root = cache_root()
    stamps = [p.stat().st_mtime_ns for p in (built.image, built.kernel, built.probe_initrd)]
    started = time.monotonic()
    again = build_host_image(root / "images", root / "downloads", lambda line: None)
    took = time.monotonic() - started
    print(f"\ncached build check: {took * 1000:.0f} ms")
    assert again == built and took < 1
    assert stamps == [p.stat().st_mtime_ns for p in (built.image, built.kernel, built.probe_initrd)]
    assert built.image.read_bytes()[:4] == b"QFI\xfb"
    assert json.loads((built.image.parent / "newtlab-host.json").read_text())["key"] == built.key
    wrapper = Path(__file__).with_name("build.py")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(wrapper), "--for-tests"], capture_output=True, text=True
    )
    print(f"tests/image/build.py, image current: {time.monotonic() - started:.2f} s")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(built.image)


# -- one VM ---------------------------------------------------------------------------------


def console_values(hostname: str, **values: str) -> dict[str, str]:
    """The placeholders newtlab's deploy fills in (root is the SSH user unless given)."""
    console = {"console_user": ROOT_USER, "console_pass": ROOT_PASSWORD}
    return {"hostname": hostname, "ssh_user": ROOT_USER, **console, **values}


def shell(console: Console) -> float:
    """The console's shell prompt, with no login (autologin); the VM's age then."""
    at, typed_password = console.login(ROOT_USER, ROOT_PASSWORD)
    assert not typed_password, "the console asked for a login instead of logging root in"
    return at


def bootstrap(vm: Vm, key: asyncssh.SSHKey, hostname: str) -> dict[str, float]:
    """The console's shell and the platform's commands (as after an autologin), then a
    key login over SSH; timings."""
    console = Console(vm)
    try:
        shell_at = shell(console)
        values = console_values(hostname, ssh_pubkey=public_line(key))
        done = console.bootstrap(values, ("set_password", "bootstrap", "install_key"))
    finally:
        console.close()
    outputs = {command.split()[0]: output for command, _, output in done}
    net_up = outputs["newtlab-net-up"]
    assert net_up == "newtlab-net-up: eth0 10.0.2.15/24, sshd on port 22"
    assert outputs["newtlab-add-key"] == f"newtlab-add-key: key added for {ROOT_USER}"
    bootstrapped_at = vm.elapsed()
    ssh_ok(vm, "true", key)
    return {"shell": shell_at, "bootstrap": bootstrapped_at, "ssh": vm.elapsed()}


def bootstrap_together(
    machines: tuple[Vm, ...], key: asyncssh.SSHKey
) -> dict[str, dict[str, float]]:
    """bootstrap() on every machine at once, each named as its VM; timings by name."""
    times: dict[str, dict[str, float]] = {}
    errors: list[BaseException] = []

    def up(vm: Vm) -> None:
        try:
            times[vm.name] = bootstrap(vm, key, vm.name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=up, args=(vm,)) for vm in machines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]
    return times


def _check_bootstrapped(vm: Vm, key: asyncssh.SSHKey) -> None:
    """NICs named in QEMU order and up, hostname, data NICs configurable, a password
    login; then ACPI power-off."""
    links = ssh_ok(vm, "ip -o link", key)
    macs = dict(re.findall(r"\d+: (eth\d+): .* link/ether ([0-9a-f:]+)", links))
    assert macs == {f"eth{i}": mac(vm.index, i) for i in range(len(vm.drivers))}
    up = dict(re.findall(r"\d+: (eth\d+): <([^>]*)>", links))
    assert all("UP" in up[f"eth{i}"].split(",") for i in range(len(vm.drivers)))
    assert ssh_ok(vm, "hostname", key).strip() == vm.name
    # Data NICs: up, no address, configurable over SSH.
    assert ssh_ok(vm, "ip -o -4 addr show dev eth1", key).strip() == ""
    ssh_ok(vm, "ip addr add 192.0.2.1/24 dev eth1 && ip link set eth1 up", key)
    assert "192.0.2.1/24" in ssh_ok(vm, "ip -o addr show dev eth1", key)
    # A client with asyncssh's default preferences (RSA first) and a password: the RSA
    # host key is made for it, not before (at every boot it would cost seconds of CPU).
    keys = "ls /etc/dropbear"
    assert ssh_ok(vm, keys, key).split() == ["dropbear_ed25519_host_key"]
    result = ssh(vm, "id -u", password=ROOT_PASSWORD, host_key_algs=None)
    assert (result.exit_status, str(result.stdout).strip()) == (0, "0")
    assert "dropbear_rsa_host_key" in ssh_ok(vm, keys, key).split()
    print(f"{vm.name}: QEMU RSS at -m {vm.memory}: {_rss_mib(vm):.0f} MiB")
    # ACPI power button: a clean shutdown, and QEMU exits (-no-reboot).
    started = time.monotonic()
    vm.qmp("system_powerdown")
    assert vm.proc is not None
    assert vm.proc.wait(30) == 0
    print(f"{vm.name}: system_powerdown -> QEMU exit: {time.monotonic() - started:.1f} s")
    log = vm.console_log.read_text(errors="replace")
    assert "The system is going down" in log and "reboot: Power down" in log
    assert "login: " not in log and "Password: " not in log  # autologin: never a prompt


@integration
@pytest.mark.parametrize("mgmt", ["virtio-net-pci", "e1000"])
def test_console_bootstrap_then_ssh_with_nics_in_qemu_order(
    built: BuiltImage, client_key: asyncssh.SSHKey, tmp_path: Path, mgmt: str
) -> None:
    """One VM alone (the timings are a single boot's), its mgmt NIC ``mgmt`` and a mix of
    drivers after it, named by PCI order. With e1000 it boots from its disk (SYSLINUX), as
    a platform without ``vm_kernel`` would; with virtio-net directly, as its platform does."""
    drivers = [mgmt, "e1000", "virtio-net-pci", "e1000"]
    direct = mgmt == "virtio-net-pci"
    kernel = _direct(built) if direct else None
    vm = Vm("alpha", built.image, tmp_path, drivers=drivers, kernel=kernel)
    with vms(vm):
        times = bootstrap(vm, client_key, vm.name)
        print(
            f"\nmgmt {mgmt}, {'direct' if direct else 'disk'} boot: QEMU start -> shell prompt "
            f"{times['shell']:.1f} s, "
            f"bootstrapped {times['bootstrap']:.1f} s, SSH login {times['ssh']:.1f} s"
        )
        assert times["ssh"] < 60
        _check_bootstrapped(vm, client_key)


def _direct(built: BuiltImage) -> tuple[Path, Path]:
    return built.vmlinux, built.initrd


def _rss_mib(vm: Vm) -> float:
    assert vm.proc is not None
    for line in Path(f"/proc/{vm.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@integration
def test_users_and_passwords_from_the_console(
    built: BuiltImage, client_key: asyncssh.SSHKey, tmp_path: Path
) -> None:
    """The platform's create_user/install_key commands, for an SSH user other than root,
    and chpasswd; at the smallest memory the image boots with (``-m 112``)."""
    drivers = ["virtio-net-pci", "virtio-net-pci"]
    vm = Vm("vm0", built.image, tmp_path, drivers=drivers, memory=112, kernel=_direct(built))
    with vms(vm):
        console = Console(vm)
        try:
            shell(console)
            values = console_values(
                "beta", ssh_user="admin", ssh_pass="s3cret pass", ssh_pubkey=public_line(client_key)
            )
            lists = ("set_password", "bootstrap", "create_user", "install_key")
            console.bootstrap(values, lists)
            assert console.run("newtlab-add-key 'not a key'")[0] == 2
            # The generic Linux way to set a password; bad input changes nothing.
            assert console.run("echo root:N3w-pass | chpasswd") == (0, "")
            for bad, message in (("nobody:x", "user 'nobody' does not exist"), ("root", "missing")):
                status, output = console.run(f"echo {bad} | chpasswd")
                assert status == 1 and message in output, output
        finally:
            console.close()
        result = ssh(vm, "id -u; echo $HOME", password="s3cret pass", user="admin")
        assert (result.exit_status, str(result.stdout).split()) == (0, ["0", "/home/admin"])
        ssh_ok(vm, "ip link set eth1 down && ip link set eth1 up", client_key, user="admin")
        assert str(ssh(vm, "id -un", password="N3w-pass").stdout).strip() == "root"
        with pytest.raises(asyncssh.PermissionDenied):
            ssh(vm, "true", password=ROOT_PASSWORD)


# -- network namespaces, iproute2, tcpdump, iperf3 ------------------------------------------


NETNS_STEPS = (
    # The real ip wins over busybox's, also in sh -c and through env.
    ("ip -V; sh -c 'ip -V'; env ip -V", r"(?s)(iproute2-6.*){3}"),
    # A data NIC moved into a namespace and renamed there, as a virtual host's eth0.
    ("ip netns add h1 && ip link set eth1 netns h1 && ip -n h1 link set eth1 name eth0"
     " && ip -n h1 link set eth0 up && ip -n h1 link set lo up"
     " && ip -n h1 addr add 192.0.2.1/24 dev eth0 && ip netns exec h1 ip -o link",
     rf"eth0: <.*UP.* link/ether {mac(0, 1)}"),
    # A persistent UTS namespace (busybox unshare/nsenter, long options).
    ("mkdir -p /run/newtlab/uts && touch /run/newtlab/uts/h1"
     " && unshare --uts=/run/newtlab/uts/h1 hostname h1"
     " && ip netns exec h1 nsenter --uts=/run/newtlab/uts/h1 hostname && hostname",
     r"^h1\ndelta$"),
    # tcpdump in the namespace sees the ARP requests arping sends there.
    ("ip netns exec h1 sh -c 'tcpdump -n -i eth0 -c 1 & p=$!; n=0; while kill -0 $p"
     " 2>/dev/null && [ $n -lt 20 ]; do arping -c 1 -w 1 -I eth0 192.0.2.2 >/dev/null;"
     " n=$((n + 1)); done; wait $p'",
     r"1 packet captured"),
    # iperf3 server and client on the namespace's loopback, for 1 s.
    ("iperf3 --version && ip netns exec h1 sh -c 'iperf3 -s -1 >/dev/null & for i in 1 2 3 4"
     " 5; do iperf3 -c 127.0.0.1 -t 1 -f m 2>/dev/null && break; sleep 0.3; done'",
     r"(?s)iperf 3\..*[0-9.]+ Mbits/sec +receiver"),
    ("ip netns delete h1 && ip netns list", r"\A\Z"),
    # Plain DHCP on the mgmt NIC again, with the image's default script.
    ("udhcpc -i eth0 -n -q >/dev/null && ip -4 -o addr show dev eth0", r"inet 10\.0\.2\.15/24"),
)  # fmt: skip


# -- file transfer: the remote ends of sftp, scp and rsync -----------------------------------


async def _transfers(vm: Vm, key: asyncssh.SSHKey, local: Path) -> dict[str, float]:
    """``local`` to the guest and back over SFTP (dropbear's subsystem runs
    /usr/lib/sftp-server: sftp, and scp's default since OpenSSH 9) and over legacy scp
    (asyncssh runs ``scp -t`` / ``scp -f`` in the guest, as ``scp -O`` does); then the
    guest's rsync copies it there both ways through a remote shell that runs ``rsync
    --server`` as an SSH login's shell would. Each step's time."""
    payload = local.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    took: dict[str, float] = {}
    async with asyncssh.connect(
        "127.0.0.1", vm.ssh_port, username=ROOT_USER, client_keys=[key], known_hosts=None,
        agent_path=None, server_host_key_algs=ED25519_FIRST, connect_timeout=10,
    ) as conn:  # fmt: skip

        async def guest(command: str, stdin: str | None = None) -> str:
            result = await conn.run(command, input=stdin, check=False, timeout=60)
            assert result.exit_status == 0, f"{command!r}: {result.stderr!r}"
            return str(result.stdout)

        started = time.monotonic()
        async with conn.start_sftp_client() as sftp:
            await sftp.put(str(local), "/tmp/sftp.bin")
            await sftp.get("/tmp/sftp.bin", str(local.with_suffix(".sftp")))
        took["sftp put and get"] = time.monotonic() - started
        assert local.with_suffix(".sftp").read_bytes() == payload
        started = time.monotonic()
        await asyncssh.scp(str(local), (conn, "/tmp/scp.bin"))
        await asyncssh.scp((conn, "/tmp/scp.bin"), str(local.with_suffix(".scp")))
        took["scp -t and scp -f"] = time.monotonic() - started
        assert local.with_suffix(".scp").read_bytes() == payload
        started = time.monotonic()
        version = await guest("rsync --version")
        assert re.match(r"rsync +version 3\.\S+ +protocol version \d+", version), version
        # rsync's -e: "RSH HOST rsync --server ..."; this one drops HOST and runs the rest.
        await guest("cat > /tmp/rsh && chmod +x /tmp/rsh", '#!/bin/sh\nshift\nexec "$@"\n')
        await guest("rsync -e /tmp/rsh guest:/tmp/sftp.bin /tmp/rsync-pull.bin")
        await guest("rsync -e /tmp/rsh /tmp/scp.bin guest:/tmp/rsync-push.bin")
        took["rsync --server in the guest, both ways"] = time.monotonic() - started
        files = ("sftp", "scp", "rsync-pull", "rsync-push")
        sums = await guest("sha256sum " + " ".join(f"/tmp/{name}.bin" for name in files))
        assert [line.split()[0] for line in sums.splitlines()] == [digest] * len(files), sums
    return took


def _namespaces_at_the_console(vm: Vm) -> None:
    """NETNS_STEPS at the console, each's output checked; timings printed."""
    console = Console(vm)
    try:
        shell(console)
        for command, expected in NETNS_STEPS:
            started = time.monotonic()
            status, output = console.run(command)
            assert status == 0 and re.search(expected, output, re.M), (command, output)
            if "iperf3 -c" in command:
                rate = re.findall(r"([0-9.]+ Mbits/sec) +receiver", output)
                print(f"\niperf3 on a namespace's loopback: {rate[0]}", end="")
            print(f"\n{time.monotonic() - started:4.1f} s  {command[:60]}", end="")
    finally:
        console.close()


@integration
def test_remote_ends_of_transfers_then_network_namespaces_in_one_guest(
    built: BuiltImage, client_key: asyncssh.SSHKey, tmp_path: Path
) -> None:
    """What ``scp``, ``scp -O``, ``sftp`` and ``rsync -e ssh`` need on the guest's side
    (tests/integration/test_deployed_line3.py drives them with OpenSSH's own clients);
    then, in the same guest, network namespaces with iproute2, tcpdump and iperf3."""
    vm = Vm("delta", built.image, tmp_path, kernel=_direct(built))
    local = tmp_path / "payload.bin"
    local.write_bytes(os.urandom(256 * 1024 + 7))
    with vms(vm):
        bootstrap(vm, client_key, vm.name)
        took = asyncio.run(_transfers(vm, client_key, local))
        print("\n" + "\n".join(f"{what}: {seconds:.2f} s" for what, seconds in took.items()))
        _namespaces_at_the_console(vm)


# -- two VMs and a link ---------------------------------------------------------------------


@integration
def test_two_vms_ping_across_a_link(
    built: BuiltImage, client_key: asyncssh.SSHKey, tmp_path: Path
) -> None:
    """virtio-net on one end of the link, e1000 on the other: each driver sends and
    receives."""
    relay = Relay()
    drivers = {"a": "virtio-net-pci", "b": "e1000"}
    a = Vm(
        "a",
        built.image,
        tmp_path,
        1,
        [drivers["a"]] * 2,
        {1: relay.ports[0]},
        kernel=_direct(built),
    )
    b = Vm("b", built.image, tmp_path, 2, [drivers["b"]] * 2, {1: relay.ports[1]},
           kernel=_direct(built))  # fmt: skip
    try:
        with vms(a, b):
            times = bootstrap_together((a, b), client_key)
            print(
                "\ntwo VMs at once: SSH after "
                + ", ".join(
                    f"{n} ({drivers[n]}) {t['ssh']:.1f} s" for n, t in sorted(times.items())
                )
            )
            ssh_ok(a, "ip addr add 10.0.0.1/24 dev eth1", client_key)
            ssh_ok(b, "ip addr add 10.0.0.2/24 dev eth1", client_key)
            result = ssh(a, "ping -c 3 -W 5 10.0.0.2", client_key)
            assert result.exit_status == 0, result.stdout
            assert " 0% packet loss" in str(result.stdout)
    finally:
        relay.close()


# -- the KVM probe --------------------------------------------------------------------------


def probe_argv(built: BuiltImage, accel: str, cpu: str) -> list[str]:
    return [
        "qemu-system-x86_64", "-accel", accel, "-cpu", cpu, "-m", "128", "-smp", "1",
        "-kernel", str(built.kernel), "-initrd", str(built.probe_initrd),
        "-append", "console=ttyS0 panic=-1 quiet", "-display", "none", "-nodefaults",
        "-serial", "stdio", "-monitor", "none", "-no-reboot",
    ]  # fmt: skip


@integration
def test_probe_prints_its_marker_and_powers_off_under_tcg(built: BuiltImage) -> None:
    started = time.monotonic()
    result = subprocess.run(
        probe_argv(built, "tcg", "max"), capture_output=True, timeout=60, start_new_session=True
    )
    took = time.monotonic() - started
    print(f"\nprobe under TCG: marker and exit after {took:.1f} s")
    assert PROBE_MARKER.encode() in result.stdout
    assert result.returncode == 0
    assert took < 30


def test_a_library_is_looked_for_in_the_binarys_runpath_first(tmp_path: Path) -> None:
    from newtlab.image import build

    frr = tmp_path / "usr/lib/x86_64-linux-gnu/frr"
    frr.mkdir(parents=True)
    (frr / "libfrr.so.0").write_bytes(b"")
    assert build._find_library(tmp_path, "libfrr.so.0") is None  # not where the loader looks
    found = build._find_library(tmp_path, "libfrr.so.0", ("/usr/lib/x86_64-linux-gnu/frr",))
    assert found == "usr/lib/x86_64-linux-gnu/frr/libfrr.so.0"
    # $ORIGIN is the needing file's directory in the guest.
    assert build._find_library(tmp_path, "libfrr.so.0", ("/usr/lib/x86_64-linux-gnu/x/../frr",))
