"""newtlab's host image: its build, its console contract, SSH, NICs, links, the KVM probe.

The integration tests boot the image by hand (imagekit), as newtlab's deploy
would: a qcow2 overlay, the serial console on a TCP port, a user-mode mgmt
NIC with SSH forwarded, under TCG. Timing figures are printed (``-s`` shows
them); the asserted bounds are deliberately generous.
"""

from __future__ import annotations

import json
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
from image.imagekit import Console, Relay, Vm, mac, ssh, ssh_ok, vms
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
        re.compile(console[name])
    assert re.search(console["shell_prompt"], "r1# ") and re.search(console["shell_prompt"], "# ")
    assert re.search(console["login_prompt"], "newtlab login: ")
    commands = [*console["bootstrap"], *console["create_user"], *console["install_key"]]
    placeholders = set(re.findall(r"\{(\w+)\}", " ".join(commands)))
    assert placeholders <= {"ssh_user", "ssh_pass", "ssh_pubkey", "hostname"}


def test_guest_scripts_are_valid_shell() -> None:
    scripts = sorted(GUEST.glob("*.sh"))
    assert len(scripts) >= 9
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


def bootstrap(vm: Vm, key: asyncssh.SSHKey, hostname: str) -> dict[str, float]:
    """Console login and the platform's bootstrap, then a key login over SSH; timings."""
    console = Console(vm)
    try:
        login_at = console.login(ROOT_USER, ROOT_PASSWORD)
        values = {"hostname": hostname, "ssh_user": ROOT_USER, "ssh_pubkey": public_line(key)}
        done = console.bootstrap(values)
    finally:
        console.close()
    outputs = {command.split()[0]: output for command, _, output in done}
    net_up = outputs["newtlab-net-up"]
    assert net_up == "newtlab-net-up: eth0 10.0.2.15/24, sshd on port 22"
    assert outputs["newtlab-add-key"] == f"newtlab-add-key: key added for {ROOT_USER}"
    bootstrapped_at = vm.elapsed()
    ssh_ok(vm, "true", key)
    return {"login": login_at, "bootstrap": bootstrapped_at, "ssh": vm.elapsed()}


@integration
@pytest.mark.parametrize("mgmt", ["virtio-net-pci", "e1000"])
def test_console_bootstrap_then_ssh_with_nics_in_qemu_order(
    built: BuiltImage, client_key: asyncssh.SSHKey, tmp_path: Path, mgmt: str
) -> None:
    drivers = [mgmt, "e1000", "virtio-net-pci", "e1000"]  # a mix: named by PCI order
    vm = Vm("vm0", built.image, tmp_path, drivers=drivers)
    with vms(vm):
        times = bootstrap(vm, client_key, "alpha")
        print(
            f"\nmgmt {mgmt}: QEMU start -> login prompt {times['login']:.1f} s, "
            f"bootstrapped {times['bootstrap']:.1f} s, SSH login {times['ssh']:.1f} s"
        )
        assert times["ssh"] < 60
        links = ssh_ok(vm, "ip -o link", client_key)
        macs = dict(re.findall(r"\d+: (eth\d+): .* link/ether ([0-9a-f:]+)", links))
        assert macs == {f"eth{i}": mac(0, i) for i in range(len(drivers))}
        up = dict(re.findall(r"\d+: (eth\d+): <([^>]*)>", links))
        assert all("UP" in up[f"eth{i}"].split(",") for i in range(len(drivers)))
        assert ssh_ok(vm, "hostname", client_key).strip() == "alpha"
        # Data NICs: up, no address, configurable over SSH.
        assert ssh_ok(vm, "ip -o -4 addr show dev eth1", client_key).strip() == ""
        ssh_ok(vm, "ip addr add 192.0.2.1/24 dev eth1 && ip link set eth1 up", client_key)
        assert "192.0.2.1/24" in ssh_ok(vm, "ip -o addr show dev eth1", client_key)
        # A client with asyncssh's default preferences (RSA first) and a password.
        result = ssh(vm, "id -u", password=ROOT_PASSWORD, host_key_algs=None)
        assert (result.exit_status, str(result.stdout).strip()) == (0, "0")
        rss = _rss_mib(vm)
        print(f"QEMU RSS at -m {vm.memory}: {rss:.0f} MiB")
        # ACPI power button: a clean shutdown, and QEMU exits (-no-reboot).
        started = time.monotonic()
        vm.qmp("system_powerdown")
        assert vm.proc is not None
        assert vm.proc.wait(30) == 0
        print(f"system_powerdown -> QEMU exit: {time.monotonic() - started:.1f} s")
    log = vm.console_log.read_text(errors="replace")
    assert "The system is going down" in log and "reboot: Power down" in log


def _rss_mib(vm: Vm) -> float:
    assert vm.proc is not None
    for line in Path(f"/proc/{vm.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@integration
def test_a_second_user_from_the_console(
    built: BuiltImage, client_key: asyncssh.SSHKey, tmp_path: Path
) -> None:
    """The platform's create_user/install_key commands, for an SSH user other than root;
    at the smallest memory the image boots with (``-m 96``)."""
    vm = Vm("vm0", built.image, tmp_path, drivers=["virtio-net-pci", "virtio-net-pci"], memory=96)
    with vms(vm):
        console = Console(vm)
        try:
            console.login(ROOT_USER, ROOT_PASSWORD)
            values = {
                "hostname": "beta",
                "ssh_user": "admin",
                "ssh_pass": "s3cret pass",
                "ssh_pubkey": public_line(client_key),
            }
            console.bootstrap(values, ("bootstrap", "create_user", "install_key"))
            assert console.run("newtlab-add-key 'not a key'")[0] == 2
        finally:
            console.close()
        result = ssh(vm, "id -u; echo $HOME", password="s3cret pass", user="admin")
        assert (result.exit_status, str(result.stdout).split()) == (0, ["0", "/home/admin"])
        ssh_ok(vm, "ip link set eth1 down && ip link set eth1 up", client_key, user="admin")


# -- two VMs and a link ---------------------------------------------------------------------


@integration
@pytest.mark.parametrize("driver", ["virtio-net-pci", "e1000"])
def test_two_vms_ping_across_a_link(
    built: BuiltImage, client_key: asyncssh.SSHKey, tmp_path: Path, driver: str
) -> None:
    relay = Relay()
    a = Vm("a", built.image, tmp_path, 1, [driver, driver], {1: relay.ports[0]})
    b = Vm("b", built.image, tmp_path, 2, [driver, driver], {1: relay.ports[1]})
    try:
        with vms(a, b):
            times: dict[str, dict[str, float]] = {}
            errors: list[BaseException] = []

            def up(vm: Vm) -> None:
                try:
                    times[vm.name] = bootstrap(vm, client_key, vm.name)
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=up, args=(vm,)) for vm in (a, b)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            if errors:
                raise errors[0]
            print(
                f"\n{driver}, two VMs at once: SSH after "
                + ", ".join(f"{name} {t['ssh']:.1f} s" for name, t in sorted(times.items()))
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
