"""Build newtlab's small Linux host/router image from Debian packages.

The whole root filesystem is an initramfs (busybox, dropbear, the NIC
drivers); the qcow2 disk holds only a FAT filesystem with SYSLINUX, the
kernel and that initramfs, so QEMU boots it from its disk like any real
image. Built in a temp dir and renamed into place: a failed build never
leaves a half-written image. Cached by a hash of every input.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..fsutil import atomic_write
from . import debs
from .cpio import Entry, archive
from .errors import ImageBuildError

IMAGE_NAME = "newtlab-host"
FORMAT_VERSION = "1"
ROOT_PASSWORD = "newtlab"
KERNEL_CMDLINE = "console=ttyS0,115200 net.ifnames=0 quiet loglevel=3"
# Modules the guest loads (dependencies are added and ordered automatically).
MODULES = ["virtio_pci", "e1000", "virtio_net", "virtio-rng", "button", "evdev"]
LIB_PATTERNS = (
    "ld-linux-x86-64.so",
    "libc.so",
    "libcrypt.so",
    "libz.so",
    "libgmp.so",
    "libtomcrypt.so",
    "libtommath.so",
    "libnss_files.so",
)
SYSLINUX_CFG = f"""SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  APPEND initrd=initrd.gz {KERNEL_CMDLINE}
"""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuiltImage:
    image: Path  # the qcow2 to use as vm_image
    kernel: Path  # the guest kernel, also used by the KVM probe
    probe_initrd: Path  # initramfs whose init prints NEWTLAB-PROBE-OK and powers off
    key: str  # hash of every input; a different key means a rebuild


def _paths(dest: Path) -> BuiltImage:
    return BuiltImage(
        dest / f"{IMAGE_NAME}.qcow2",
        dest / f"{IMAGE_NAME}.vmlinuz",
        dest / "newtlab-probe.initrd.gz",
        "",
    )


def probe_artifacts(dest: Path) -> tuple[Path, Path] | None:
    """The KVM probe's kernel and initramfs if the image has been built into ``dest``."""
    built = _paths(dest)
    if built.kernel.exists() and built.probe_initrd.exists():
        return built.kernel, built.probe_initrd
    return None


def _guest_files() -> dict[str, bytes]:
    root = resources.files(__package__).joinpath("guest")
    files: dict[str, bytes] = {}

    def walk(node: object, prefix: str) -> None:
        for child in node.iterdir():  # type: ignore[attr-defined]
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, name + "/")
            else:
                files[name] = child.read_bytes()

    walk(root, "")
    return files


def input_key(packages: dict[str, str]) -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {
                "format": FORMAT_VERSION,
                "packages": packages,
                "cmdline": KERNEL_CMDLINE,
                "modules": MODULES,
            },
            sort_keys=True,
        ).encode()
    )
    for name, data in sorted(_guest_files().items()):
        digest.update(name.encode() + b"\0" + data)
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ImageBuildError(f"{name} not found — install it: apt-get install {package}")
    return path


def _module_order(modules_root: Path, wanted: list[str]) -> list[Path]:
    """Module files for ``wanted`` and their dependencies, dependencies first."""
    by_name = {p.name.removesuffix(".ko").replace("-", "_"): p for p in modules_root.rglob("*.ko")}
    ordered: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        key = name.replace("-", "_")
        if key in seen:
            return
        seen.add(key)
        path = by_name.get(key)
        if path is None:
            raise ImageBuildError(f"kernel module {name} not found in the kernel package")
        match = re.search(rb"\0depends=([^\0]*)\0", path.read_bytes())
        for dep in match.group(1).decode().split(",") if match and match.group(1) else []:
            visit(dep)
        ordered.append(path)

    for name in wanted:
        visit(name)
    return ordered


def _rootfs(x: Path, busybox: Path, guest: dict[str, bytes], modules: list[Path]) -> list[Entry]:
    d, f, x_ = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFREG | 0o755
    link = stat.S_IFLNK | 0o777
    entries: dict[str, Entry] = {}

    def add(path: str, mode: int, data: bytes = b"") -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            entries.setdefault(parent, Entry(parent, d))
        entries[path] = Entry(path, mode, data)

    for directory in ("proc", "sys", "dev", "run", "tmp", "var/log", "etc/dropbear", "root"):
        add(directory, d if directory != "root" else stat.S_IFDIR | 0o700)
    add("bin/busybox", x_, busybox.read_bytes())
    applets = subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "bin/busybox":
            depth = applet.count("/")
            add(applet, link, ("../" * depth + "bin/busybox").encode())
    add("init", link, b"bin/busybox")
    add("etc/inittab", f, guest["inittab"])
    add("etc/init.d/rcS", x_, guest["rcS"])
    add("etc/profile", f, guest["profile"])
    add("etc/acpi/PWRF/00000080", x_, guest["acpi/PWRF/00000080"])
    add("etc/newtlab/udhcpc.script", x_, guest["udhcpc.script"])
    add("sbin/newtlab-net-up", x_, guest["newtlab-net-up"])
    add("sbin/newtlab-name-nics", x_, guest["newtlab-name-nics"])
    add("sbin/newtlab-sshd", x_, guest["newtlab-sshd"])
    add("etc/hostname", f, b"newtlab\n")
    add("etc/shells", f, b"/bin/sh\n/bin/ash\n")
    add("etc/passwd", f, b"root:x:0:0:root:/root:/bin/sh\n")
    add("etc/group", f, b"root:x:0:\ntty:x:5:\n")
    hashed = subprocess.run(
        [str(busybox), "mkpasswd", "-m", "sha512", ROOT_PASSWORD, "newtlabsalt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    add("etc/shadow", stat.S_IFREG | 0o600, f"root:{hashed}:19000:0:99999:7:::\n".encode())
    add("usr/sbin/dropbear", x_, (x / "usr/sbin/dropbear").read_bytes())
    add("usr/bin/dropbearkey", x_, (x / "usr/bin/dropbearkey").read_bytes())
    for lib_dir in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64"):
        for path in sorted((x / lib_dir).glob("*")):
            if not path.name.startswith(LIB_PATTERNS):
                continue
            if path.is_symlink():
                add(f"{lib_dir}/{path.name}", link, os.readlink(path).encode())
            elif path.is_file():
                add(f"{lib_dir}/{path.name}", x_, path.read_bytes())
    for module in modules:
        add(f"lib/modules/{module.name}", f, module.read_bytes())
    add("etc/newtlab/modules", f, "".join(f"{m.name}\n" for m in modules).encode())
    return list(entries.values())


def _probe_rootfs(busybox: Path, guest: dict[str, bytes]) -> list[Entry]:
    d = stat.S_IFDIR | 0o755
    return [
        Entry("bin", d),
        Entry("dev", d),
        Entry("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes()),
        Entry("init", stat.S_IFREG | 0o755, guest["probe-init"]),
    ]


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def _boot_disk(work: Path, kernel: Path, initrd: Path) -> Path:
    """A FAT disk (no partition table) that SYSLINUX boots, converted to qcow2."""
    mformat, mcopy = _tool("mformat", "mtools"), _tool("mcopy", "mtools")
    syslinux = _tool("syslinux", "syslinux")
    raw = work / "disk.raw"
    size_mib = (kernel.stat().st_size + initrd.stat().st_size) // (1 << 20) + 6
    with raw.open("wb") as handle:
        handle.truncate(size_mib << 20)
    cfg = work / "syslinux.cfg"
    cfg.write_text(SYSLINUX_CFG)
    steps = [
        [
            mformat,
            "-i",
            str(raw),
            "-T",
            str(size_mib * 2048),
            "-h",
            "64",
            "-s",
            "32",
            "-v",
            "NEWTLAB",
            "::",
        ],
        [syslinux, "--install", str(raw)],
        [mcopy, "-i", str(raw), str(kernel), "::vmlinuz"],
        [mcopy, "-i", str(raw), str(initrd), "::initrd.gz"],
        [mcopy, "-i", str(raw), str(cfg), "::syslinux.cfg"],
    ]
    for argv in steps:
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise ImageBuildError(f"{Path(argv[0]).name} failed: {result.stderr.strip()}")
    qcow2 = work / "disk.qcow2"
    qemu_img = _tool("qemu-img", "qemu-utils")
    result = subprocess.run(
        [qemu_img, "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ImageBuildError(f"qemu-img convert failed: {result.stderr.strip()}")
    return qcow2


def build_host_image(dest: Path, cache: Path, progress: Progress | None = None) -> BuiltImage:
    """Build (or reuse) the host image in ``dest``; downloads are kept in ``cache``."""
    say = progress or (lambda _: None)
    kernel_pkg = debs.kernel_package()
    packages = debs.versions([kernel_pkg, *debs.PACKAGES])
    key = input_key(packages)
    built = _paths(dest)
    meta_path = dest / f"{IMAGE_NAME}.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = {}
    if meta.get("key") == key and all(
        p.exists() for p in (built.image, built.kernel, built.probe_initrd)
    ):
        say(f"{built.image} is up to date")
        return BuiltImage(built.image, built.kernel, built.probe_initrd, key)

    say(f"downloading {len(packages)} Debian packages into {cache / 'debs'}")
    files = debs.download(packages, cache / "debs")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=dest) as tmp:
        work = Path(tmp)
        x = work / "x"
        say("unpacking")
        debs.unpack(files, x)
        busybox = x / "bin" / "busybox"
        kernels = sorted((x / "boot").glob("vmlinuz-*"))
        if not kernels or not busybox.exists():
            raise ImageBuildError("the packages did not contain a kernel and busybox")
        modules = _module_order(x / "lib" / "modules", MODULES)
        guest = _guest_files()
        say("building the initramfs")
        initrd = work / "initrd.gz"
        initrd.write_bytes(_gzip(archive(_rootfs(x, busybox, guest, modules))))
        probe = work / "probe.gz"
        probe.write_bytes(_gzip(archive(_probe_rootfs(busybox, guest))))
        say("building the boot disk")
        qcow2 = _boot_disk(work, kernels[0], initrd)
        shutil.copyfile(kernels[0], work / "vmlinuz")
        for source, target in (
            (qcow2, built.image),
            (work / "vmlinuz", built.kernel),
            (probe, built.probe_initrd),
        ):
            os.replace(source, target)
    record = {"key": key, "packages": packages, "root_password": ROOT_PASSWORD}
    atomic_write(meta_path, (json.dumps(record, indent=2) + "\n").encode())
    say(f"built {built.image}")
    return BuiltImage(built.image, built.kernel, built.probe_initrd, key)
