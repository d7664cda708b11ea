"""Build newtlab's small Linux images from Debian packages: the host image and,
on top of it, the router image (Debian's FRR).

The whole root filesystem is an initramfs (busybox, dropbear, iproute2's ip,
tcpdump, iperf3, the remote ends of scp, sftp and rsync, and exactly the
shared libraries they need, the NIC drivers, the scripts in ``guest/``); the
qcow2 disk holds only a FAT filesystem with SYSLINUX, the kernel and that
initramfs, so QEMU boots it from its disk like any real image, and every
boot starts clean (nothing is ever written to the disk, so an overlay stays
empty). Beside the disk: the kernel uncompressed and the initramfs, which the
image's platform boots directly (``vm_kernel``, ``vm_initrd``: ``vmlinux``).
No root, no loop mounts. Built in a temp dir and renamed into place:
a failed build never leaves a half-written image. Cached by a hash of every
input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..agent.fsutil import atomic_write
from . import debs, elf, vmlinux
from .cpio import Entry, archive
from .errors import ImageBuildError

IMAGE_NAME = "newtlab-host"
ROUTER_IMAGE_NAME = "newtlab-router"
PROBE_INITRD_NAME = "newtlab-probe.initrd.gz"
FORMAT_VERSION = "3"
ROOT_USER = "root"
ROOT_PASSWORD = "newtlab"
HOSTNAME = "newtlab"
KERNEL_CMDLINE = (
    "console=ttyS0,115200 net.ifnames=0 quiet loglevel=3 "
    # Under TCG these save ~0.7 s of boot; a disposable lab guest loses nothing.
    "mitigations=off apparmor=0 audit=0 nowatchdog cryptomgr.notests"
)
# Modules the guest loads; their dependencies are added, in order, at build time.
MODULES = ("virtio_pci", "virtio_net", "e1000", "virtio-rng", "button", "evdev",
           "ata_piix", "sr_mod", "isofs")  # fmt: skip  # the last three: a NoCloud seed CD
# Package data in guest/ (named *.sh / *.txt so that it is packaged) ->
# (path in the guest, mode).
GUEST_FILES = {
    "inittab.txt": ("etc/inittab", 0o644),
    "rcS.sh": ("etc/init.d/rcS", 0o755),
    "profile.sh": ("etc/profile", 0o644),
    "acpi-power-button.sh": ("etc/acpi/PWRF/00000080", 0o755),
    "udhcpc-script.sh": ("etc/udhcpc/default.script", 0o755),  # Debian's busybox udhcpc default
    "newtlab-autologin.sh": ("sbin/newtlab-autologin", 0o755),
    "chpasswd.sh": ("usr/sbin/chpasswd", 0o755),
    "newtlab-name-nics.sh": ("sbin/newtlab-name-nics", 0o755),
    "newtlab-net-up.sh": ("sbin/newtlab-net-up", 0o755),
    "newtlab-sshd.sh": ("sbin/newtlab-sshd", 0o755),
    "newtlab-add-key.sh": ("sbin/newtlab-add-key", 0o755),
    "newtlab-add-user.sh": ("sbin/newtlab-add-user", 0o755),
    "newtlab-nocloud.sh": ("sbin/newtlab-nocloud", 0o755),
}
PROBE_INIT = "probe-init.sh"
# Taken from the unpacked packages as they are there (symlinks as symlinks,
# directories whole): only the binaries the guest uses, not the packages'
# docs and other tools. The shared libraries they need are added by
# following their DT_NEEDED entries (see _add_libraries).
PACKAGE_FILES = (
    "usr/sbin/dropbear", "usr/bin/dropbearkey",
    "bin/ip", "sbin/ip", "etc/iproute2",  # iproute2's ip reads its tables from /etc/iproute2
    "usr/bin/iperf3", "usr/bin/tcpdump",
    # The remote end of file transfers over SSH. dropbear runs its SFTP subsystem
    # from /usr/lib/sftp-server (a link to openssh/sftp-server in the package);
    # scp -O and rsync run `scp -t/-f` and `rsync --server` through the shell.
    "usr/lib/sftp-server", "usr/bin/scp", "usr/bin/rsync",
)  # fmt: skip
# Where the guest's dynamic loader looks for a library (Debian's glibc, no
# ld.so.cache), in its order.
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib")
BIN_DIRS = ("bin/", "sbin/", "usr/bin/", "usr/sbin/")
MAX_SYMLINKS = 8
# The interpreter of newtlab's own guest scripts (#!/bin/busybox-static sh):
# see debs.STATIC_BUSYBOX.
STATIC_BUSYBOX = "bin/busybox-static"
# Debian's tcpdump drops root to this user once it has opened the interface.
TCPDUMP_USER = "tcpdump:x:104:104:tcpdump:/nonexistent:/usr/sbin/nologin\n"
TOOLS = {  # command -> Debian package providing it
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "mformat": "mtools",
    "mcopy": "mtools",
    "syslinux": "syslinux",
    "qemu-img": "qemu-utils",
}
SYSLINUX_CFG = f"""SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  APPEND initrd=initrd.gz {KERNEL_CMDLINE}
"""
IMAGE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.qcow2")  # build_host_image(name=)
FAT_SERIAL = "4e4c4142"  # fixed, so the same inputs give the same disk layout
FIXED_MTIME = 946684800  # 2000-01-01: file times on the FAT disk

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Recipe:
    """What one of newtlab's images is made of, beyond the kernel every image has."""

    name: str  # the files' stem: NAME.qcow2, .vmlinuz, .vmlinux, .initrd.gz, .json
    packages: tuple[str, ...]  # Debian packages (see debs.PACKAGES)
    files: tuple[str, ...]  # taken from them as they are (see PACKAGE_FILES)
    guest_files: dict[str, tuple[str, int]]  # guest/NAME -> (path in the guest, mode)
    text: dict[str, str]  # more files: path in the guest -> content
    users: tuple[str, ...] = ()  # /etc/passwd lines beyond root's and tcpdump's
    groups: tuple[str, ...] = ()  # /etc/group lines beyond root, tty and tcpdump


HOST = Recipe(IMAGE_NAME, debs.PACKAGES, PACKAGE_FILES, GUEST_FILES, {})
# FRR's daemons (the routing protocols newtlab's examples use), its shell, and
# newtlab's script that starts and supervises them (guest/newtlab-frr.sh).
FRR_DAEMONS = ("zebra", "bgpd", "ospfd", "staticd", "bfdd")
ROUTER = Recipe(
    ROUTER_IMAGE_NAME,
    (*debs.PACKAGES, *debs.FRR_PACKAGES),
    (*PACKAGE_FILES, *(f"usr/lib/frr/{d}" for d in (*FRR_DAEMONS, "watchfrr")), "usr/bin/vtysh"),
    {**GUEST_FILES, "newtlab-frr.sh": ("sbin/newtlab-frr", 0o755)},
    {
        # One configuration for every daemon, applied by vtysh -b; vtysh asks PAM
        # first, which the image does not have, then this user list.
        "etc/frr/vtysh.conf": "service integrated-vtysh-config\nusername root nopassword\n",
        "etc/frr/frr.conf": "frr defaults traditional\nlog syslog informational\n!\n",
        # A NoCloud user-data that is not a script becomes that file (newtlab-nocloud).
        "etc/newtlab/user-data-config": "/etc/frr/frr.conf\n",
        "etc/newtlab/boot.d/frr": "#!/bin/busybox-static sh\nexec /sbin/newtlab-frr boot\n",
    },
    users=("frr:x:100:101:Frr routing suite:/nonexistent:/usr/sbin/nologin",),
    groups=("frr:x:101:", "frrvty:x:102:frr"),
)
RECIPES = {"host": HOST, "router": ROUTER}


@dataclass(frozen=True)
class BuiltImage:
    image: Path  # the qcow2 to use as vm_image (boots from its disk)
    kernel: Path  # the guest's kernel, also the KVM probe's kernel
    probe_initrd: Path  # initramfs whose /init prints NEWTLAB-PROBE-OK and powers off
    key: str  # hash of every input; a different key means a rebuild
    vmlinux: Path  # the kernel uncompressed, for a direct boot (vm_kernel)
    initrd: Path  # the guest's root filesystem, also on the disk (vm_initrd)

    @property
    def boot_files(self) -> tuple[Path, Path, Path]:
        """What a platform of this image names: its disk, kernel and initramfs."""
        return self.image, self.vmlinux, self.initrd


def _paths(dest: Path, key: str = "", name: str = IMAGE_NAME) -> BuiltImage:
    return BuiltImage(
        dest / f"{name}.qcow2",
        dest / f"{name}.vmlinuz",
        dest / PROBE_INITRD_NAME,
        key,
        dest / f"{name}.vmlinux",
        dest / f"{name}.initrd.gz",
    )


def _complete(built: BuiltImage) -> bool:
    return all(p.is_file() for p in (*built.boot_files, built.kernel, built.probe_initrd))


def probe_artifacts(dest: Path) -> tuple[Path, Path] | None:
    """The KVM probe's kernel and initramfs if the image has been built into ``dest``."""
    built = _paths(dest)
    if built.kernel.is_file() and built.probe_initrd.is_file():
        return built.kernel, built.probe_initrd
    return None


def host_platform() -> dict[str, Any]:
    """The platforms.json entry for this image (``platform.json`` in this package)."""
    text = resources.files(__package__).joinpath("platform.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _guest_file(name: str) -> bytes:
    return resources.files(__package__).joinpath("guest", name).read_bytes()


def _recipe_digest(recipe: Recipe) -> hashlib._Hash:
    """Everything that shapes the image except the package versions."""
    digest = hashlib.sha256()
    shape = {
        "format": FORMAT_VERSION,
        "cmdline": KERNEL_CMDLINE,
        "modules": MODULES,
        "recipe": dataclasses.asdict(recipe),
        "password": ROOT_PASSWORD,
        "hostname": HOSTNAME,
    }
    digest.update(json.dumps(shape, sort_keys=True).encode())
    for name in sorted([*recipe.guest_files, PROBE_INIT]):
        digest.update(name.encode() + b"\0" + _guest_file(name) + b"\0")
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest


def _key(recipe: hashlib._Hash, extra: str) -> str:
    digest = recipe.copy()
    digest.update(extra.encode())
    return digest.hexdigest()[:16]


def _tools() -> dict[str, str]:
    found = {name: shutil.which(name) for name in TOOLS}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        packages = sorted({TOOLS[name] for name in missing})
        raise ImageBuildError(
            f"cannot build the newtlab host image: {', '.join(missing)} not found. "
            f"Install {'them' if len(missing) > 1 else 'it'} with "
            f"`apt-get install {' '.join(packages)}` (Debian 12) and run the build again."
        )
    return {name: str(path) for name, path in found.items()}


def _module_order(modules_root: Path, wanted: tuple[str, ...]) -> list[Path]:
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
            raise ImageBuildError(
                f"kernel module {name} is not in the kernel package (is "
                f"{debs.KERNEL_META} still Debian's generic amd64 kernel?)"
            )
        match = re.search(rb"\0depends=([^\0]*)\0", path.read_bytes())
        for dep in match.group(1).decode().split(",") if match and match.group(1) else []:
            visit(dep)
        ordered.append(path)

    for name in wanted:
        visit(name)
    return ordered


class _Tree:
    """Entries of an initramfs, parent directories added as needed."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def add(self, path: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            self.entries.setdefault(parent, Entry(parent, stat.S_IFDIR | 0o755))
        self.entries[path] = Entry(path, mode, data, rdev)

    def file(self, path: str, data: bytes, perm: int = 0o644) -> None:
        self.add(path, stat.S_IFREG | perm, data)

    def link(self, path: str, target: str) -> None:
        self.add(path, stat.S_IFLNK | 0o777, target.encode())

    def dir(self, path: str, perm: int = 0o755) -> None:
        self.add(path, stat.S_IFDIR | perm)

    def console(self) -> None:
        # The kernel opens /dev/console for init's stdin/stdout before anything mounts /dev.
        self.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))

    def gzipped(self) -> bytes:
        # Level 6: 9 takes three times as long (~3 s here) for 0.4 % less.
        return gzip.compress(archive(list(self.entries.values())), compresslevel=6, mtime=0)


def _run_guest(x: Path, binary: str, *args: str) -> str:
    """Run one of the guest's binaries here, through the guest's own dynamic
    loader and libraries (whatever the building machine's libc)."""
    program = x / binary
    info = elf.parse(program.read_bytes())
    argv = [str(program), *args]
    if info is not None and info.interpreter:
        loader = x / _resolve(x, info.interpreter.lstrip("/"))[1]
        libraries = ":".join(str(x / lib_dir) for lib_dir in LIB_DIRS)
        argv = [str(loader), "--library-path", libraries, *argv]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageBuildError(
            f"running the guest's {binary} {args[0]} failed: {result.stderr.strip()}"
        )
    return result.stdout


def _resolve(x: Path, rel: str) -> tuple[list[tuple[str, str]], str]:
    """Follow ``rel``'s symlinks inside the unpacked packages ``x`` (an absolute
    target means the guest's root, never the building machine's): the links met,
    as (path, target), and the path they lead to."""
    links: list[tuple[str, str]] = []
    for _ in range(MAX_SYMLINKS):
        if not (x / rel).is_symlink():
            return links, rel
        target = os.readlink(x / rel)
        links.append((rel, target))
        joined = target if target.startswith("/") else f"/{os.path.dirname(rel)}/{target}"
        rel = os.path.normpath(joined).lstrip("/")
    raise ImageBuildError(f"/{rel} in the downloaded packages: more than {MAX_SYMLINKS} symlinks")


def _take(tree: _Tree, x: Path, rel: str) -> str:
    """Copy ``rel`` from the unpacked packages into the tree as it is there: its
    symlinks, the file they lead to (with its mode) or the whole directory.
    Returns the path the symlinks lead to."""
    links, real = _resolve(x, rel)
    for path, target in links:
        tree.link(path, target)
    source = x / real
    if source.is_dir():
        for child in sorted(source.iterdir()):
            _take(tree, x, f"{real}/{child.name}")
    elif source.is_file():
        tree.file(real, source.read_bytes(), stat.S_IMODE(source.stat().st_mode))
    else:
        raise ImageBuildError(
            f"/{rel} is in none of the downloaded packages (did a package in "
            "debs.PACKAGES move or drop it?)"
        )
    return real


def _find_library(x: Path, name: str, runpath: tuple[str, ...] = ()) -> str | None:
    """Where in the packages the guest's loader finds ``name`` (a soname or the loader's
    path): in the needing file's ``runpath`` (``$ORIGIN`` already expanded) first."""
    if "/" in name:
        candidates = [name.lstrip("/")]
    else:
        dirs = [os.path.normpath(d).lstrip("/") for d in runpath]
        candidates = [f"{lib_dir}/{name}" for lib_dir in (*dirs, *LIB_DIRS)]
    return next((rel for rel in candidates if os.path.lexists(x / rel)), None)


def _needs(path: str, data: bytes) -> tuple[list[str], tuple[str, ...]]:
    """The loader and the libraries the file at ``path`` names, and where it asks
    the loader to look first; nothing if it is not ELF."""
    try:
        info = elf.parse(data)
    except elf.ElfError as exc:
        raise ImageBuildError(f"cannot read /{path} as an ELF file: {exc}") from None
    if info is None:
        return [], ()
    origin = "/" + os.path.dirname(path)
    runpath = tuple(d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in info.runpath)
    return [*([info.interpreter] if info.interpreter else []), *info.needed], runpath


def _add_libraries(tree: _Tree, x: Path) -> None:
    """Add the dynamic loader and the shared libraries every ELF file in the tree
    needs, transitively, from the unpacked packages: exactly those, nothing else."""
    todo = [(path, path) for path, e in sorted(tree.entries.items()) if stat.S_ISREG(e.mode)]
    while todo:
        path, binary = todo.pop()  # binary: what brought ``path`` in, for the error
        names, runpath = _needs(path, tree.entries[path].data)
        for name in names:
            found = _find_library(x, name, runpath)
            if found is None:
                via = "" if path == binary else f" (through /{path})"
                raise ImageBuildError(
                    f"{name}, needed by /{binary}{via}, is in none of the downloaded "
                    "packages: add the Debian package holding it to debs.PACKAGES (or "
                    "debs.FRR_PACKAGES)"
                )
            if found not in tree.entries:
                todo.append((_take(tree, x, found), binary))


def _add_busybox(tree: _Tree, x: Path) -> None:
    """busybox and a link for each applet where busybox says it belongs (getty in
    /sbin, ...), except where a real binary has the name (iproute2's ip): that
    one wins on any PATH."""
    _take(tree, x, "bin/busybox")
    taken = {p.rsplit("/", 1)[-1] for p in tree.entries if p.startswith(BIN_DIRS)}
    for applet in _run_guest(x, "bin/busybox", "--list-full").split():
        if applet.rsplit("/", 1)[-1] not in taken:
            tree.link(applet, "../" * applet.count("/") + "bin/busybox")


def _accounts(tree: _Tree, x: Path, recipe: Recipe) -> None:
    users = "".join(f"{line}\n" for line in recipe.users)
    groups = "".join(f"{line}\n" for line in recipe.groups)
    tree.file("etc/passwd", f"{ROOT_USER}:x:0:0:root:/root:/bin/sh\n{TCPDUMP_USER}{users}".encode())
    tree.file("etc/group", f"root:x:0:\ntty:x:5:\ntcpdump:x:104:\n{groups}".encode())
    hashed = _run_guest(x, "bin/busybox", "mkpasswd", "-m", "sha512", ROOT_PASSWORD, "newtlab.")
    tree.file("etc/shadow", f"{ROOT_USER}:{hashed.strip()}:19000:0:99999:7:::\n".encode(), 0o600)


def _rootfs(x: Path, static_x: Path, modules: list[Path], recipe: Recipe) -> bytes:
    tree = _Tree()
    for directory in ("proc", "sys", "dev", "run", "tmp", "var/log", "etc/dropbear", "home"):
        tree.dir(directory)
    tree.dir("root", 0o700)
    tree.console()
    for name, (target, perm) in recipe.guest_files.items():
        tree.file(target, _guest_file(name), perm)
    for target, text in recipe.text.items():
        tree.file(target, text.encode(), 0o755 if text.startswith("#!") else 0o644)
    for rel in recipe.files:
        _take(tree, x, rel)
    _add_busybox(tree, x)
    tree.file(STATIC_BUSYBOX, (static_x / "bin/busybox").read_bytes(), 0o755)
    tree.link("init", STATIC_BUSYBOX)
    tree.file("etc/hostname", f"{HOSTNAME}\n".encode())
    tree.file("etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n".encode())
    tree.file("etc/shells", b"/bin/sh\n/bin/ash\n")
    _accounts(tree, x, recipe)
    for module in modules:
        tree.file(f"lib/modules/{module.name}", module.read_bytes())
    tree.file("etc/newtlab/modules", "".join(f"{m.name}\n" for m in modules).encode())
    _add_libraries(tree, x)
    return tree.gzipped()


def _probe_rootfs(x: Path) -> bytes:
    tree = _Tree()
    tree.dir("dev")
    tree.console()
    tree.file("bin/busybox", (x / "bin" / "busybox").read_bytes(), 0o755)
    tree.file("init", _guest_file(PROBE_INIT), 0o755)
    return tree.gzipped()


def _step(argv: list[str], what: str) -> None:
    # mtools (and SYSLINUX's installer, through it) date what they write by
    # SOURCE_DATE_EPOCH when set, else now: the same inputs give the same disk.
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(FIXED_MTIME)}
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise ImageBuildError(
            f"building the boot disk: {what} failed ({Path(argv[0]).name}: "
            f"{result.stderr.strip() or result.stdout.strip() or f'exit {result.returncode}'})"
        )


def _boot_disk(work: Path, tools: dict[str, str], kernel: Path, initrd: Path) -> Path:
    """A FAT disk (no partition table) that SYSLINUX boots, converted to qcow2."""
    raw = work / "disk.raw"
    size_mib = (kernel.stat().st_size + initrd.stat().st_size) // (1 << 20) + 6
    with raw.open("wb") as handle:
        handle.truncate(size_mib << 20)
    boot = work / "boot"
    boot.mkdir()
    shutil.copyfile(kernel, boot / "vmlinuz")
    shutil.copyfile(initrd, boot / "initrd.gz")
    (boot / "syslinux.cfg").write_text(SYSLINUX_CFG)
    for path in boot.iterdir():
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    sectors = str(size_mib * 2048)
    image = ["-i", str(raw)]
    _step(
        [tools["mformat"], *image, "-T", sectors, "-h", "64", "-s", "32", "-N", FAT_SERIAL,
         "-v", "NEWTLAB", "::"],
        "formatting FAT",
    )  # fmt: skip
    _step([tools["syslinux"], "--install", str(raw)], "installing SYSLINUX")
    for name in ("vmlinuz", "initrd.gz", "syslinux.cfg"):
        _step([tools["mcopy"], "-m", *image, str(boot / name), f"::{name}"], f"copying {name}")
    qcow2 = work / "disk.qcow2"
    _step(
        [tools["qemu-img"], "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)],
        "converting to qcow2",
    )
    return qcow2


@contextlib.contextmanager
def _locked(dest: Path, say: Progress) -> Iterator[None]:
    """One build at a time per image directory (other processes wait; the images
    share the KVM probe's files)."""
    with (dest / f".{IMAGE_NAME}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another build in {dest}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _build(
    dest: Path, cache: Path, packages: list[debs.Deb], key: str, say: Progress, recipe: Recipe
) -> BuiltImage:
    started = time.monotonic()
    tools = _tools()
    files = debs.download(packages, cache / "debs", say)
    for stale in dest.glob(".build-*"):  # left by a killed build (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    built = _paths(dest, key, recipe.name)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=dest) as tmp:
        work = Path(tmp)
        x, static_x = work / "x", work / "static"
        say(f"unpacking {len(files)} packages")
        # Both busybox packages hold bin/busybox: the static one goes apart.
        for deb, file in zip(packages, files, strict=True):
            debs.unpack([file], static_x if deb.name == debs.STATIC_BUSYBOX else x)
        kernels = sorted((x / "boot").glob("vmlinuz-*"))
        if len(kernels) != 1 or not all((d / "bin/busybox").is_file() for d in (x, static_x)):
            raise ImageBuildError(
                "the downloaded packages hold no single kernel and busybox: check "
                f"`apt-cache show {debs.KERNEL_META} busybox {debs.STATIC_BUSYBOX}`"
            )
        releases = [p.name for p in (x / "lib" / "modules").iterdir()]
        modules = _module_order(x / "lib" / "modules", MODULES)
        say(f"building the initramfs (kernel {releases[0]}, {len(modules)} modules)")
        initrd = work / "initrd.gz"
        initrd.write_bytes(_rootfs(x, static_x, modules, recipe))
        probe = work / "probe.gz"
        probe.write_bytes(_probe_rootfs(static_x))
        say("building the boot disk")
        qcow2 = _boot_disk(work, tools, kernels[0], initrd)
        shutil.copyfile(kernels[0], work / "vmlinuz")
        say("extracting the kernel for a direct boot")
        (work / "vmlinux").write_bytes(vmlinux.extract(kernels[0].read_bytes()))
        for source, target in (
            (qcow2, built.image),
            (work / "vmlinuz", built.kernel),
            (probe, built.probe_initrd),
            (work / "vmlinux", built.vmlinux),
            (initrd, built.initrd),
        ):
            os.replace(source, target)
    say(
        f"built {built.image} ({built.image.stat().st_size / (1 << 20):.1f} MiB) "
        f"in {time.monotonic() - started:.1f} s"
    )
    return built


def _check_name(name: str) -> None:
    if not IMAGE_FILE_NAME.fullmatch(name):
        raise ImageBuildError(
            f"image name {name!r}: give a plain file name ending in .qcow2 (letters, "
            "digits, '.', '_' and '-', starting with a letter or digit; no '/'), "
            "e.g. alpine-testhost.qcow2"
        )


def _same_file(image: Path, other: Path) -> bool:
    """``other`` is ``image``: its hard link, or a copy of this very build."""
    try:
        a, b = image.stat(), other.stat()
    except OSError:
        return False
    same_inode = (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    return same_inode or (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns)


def _named(built: BuiltImage, name: str) -> BuiltImage:
    """The image also as ``name`` next to it: a hard link (a copy where the
    filesystem has none), atomically replaced once the image was rebuilt."""
    target = built.image.with_name(name)
    if not _same_file(built.image, target):
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(built.image, tmp)
        except OSError:
            shutil.copy2(built.image, tmp)  # keeps the mtime, so _same_file knows it
        os.replace(tmp, target)
    return dataclasses.replace(built, image=target)


def build_host_image(
    dest_dir: Path, cache_dir: Path, progress: Progress | None = None, name: str | None = None
) -> BuiltImage:
    """Build (or reuse) the host image in ``dest_dir``; downloads are kept in ``cache_dir``.

    A no-op (milliseconds, no apt call) while nothing it is built from has
    changed: the guest files, this builder, apt's package lists. When the
    lists changed, the exact package versions decide whether to rebuild.
    With ``name`` (e.g. ``alpine-testhost.qcow2``) the image is also
    ``dest_dir/name``, and the result's ``image`` is that file.
    Raises ``ImageBuildError`` saying what failed and what to install or do.
    """
    return build_image("host", dest_dir, cache_dir, progress, name)


def build_image(
    kind: str,
    dest_dir: Path,
    cache_dir: Path,
    progress: Progress | None = None,
    name: str | None = None,
) -> BuiltImage:
    """``build_host_image`` for any of ``RECIPES`` (``host``, ``router``)."""
    if name is not None:
        _check_name(name)
    recipe = RECIPES[kind]
    built = _build_or_reuse(Path(dest_dir), Path(cache_dir), progress or (lambda _: None), recipe)
    return built if name is None else _named(built, name)


def _build_or_reuse(dest_dir: Path, cache_dir: Path, say: Progress, recipe: Recipe) -> BuiltImage:
    meta_path = dest_dir / f"{recipe.name}.json"
    paths = _paths(dest_dir, name=recipe.name)
    digest = _recipe_digest(recipe)
    quick = _key(digest, debs.apt_fingerprint())
    meta = _read_meta(meta_path)
    if meta.get("quick") == quick and _complete(paths):
        say(f"{paths.image} is up to date")
        return _paths(dest_dir, str(meta["key"]), recipe.name)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with _locked(dest_dir, say):
        meta = _read_meta(meta_path)  # another process may have just built it
        complete = _complete(paths)
        if meta.get("quick") == quick and complete:
            say(f"{paths.image} is up to date")
            return _paths(dest_dir, str(meta["key"]), recipe.name)
        say("checking Debian package versions")
        try:
            packages = debs.resolve(recipe.packages)
        except ImageBuildError as exc:
            if complete and meta.get("key"):
                say(f"keeping the existing image: cannot check package versions ({exc})")
                return _paths(dest_dir, str(meta["key"]), recipe.name)
            raise
        versions = {deb.name: deb.version for deb in packages}
        key = _key(digest, json.dumps(versions, sort_keys=True))
        if meta.get("key") == key and complete:
            say(f"{paths.image} is up to date")
            built = _paths(dest_dir, key, recipe.name)
        else:
            built = _build(dest_dir, cache_dir, packages, key, say, recipe)
        record = {
            "key": key,
            "quick": quick,
            "packages": versions,
            "user": ROOT_USER,
            "password": ROOT_PASSWORD,
        }
        atomic_write(meta_path, (json.dumps(record, indent=2) + "\n").encode())
        return built
