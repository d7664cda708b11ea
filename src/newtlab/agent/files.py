"""A lab's files on a host: its directories, base images, overlays and logs.

Each VM writes to its own copy-on-write qcow2 overlay; the base is never
modified.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import stat
import subprocess
from pathlib import Path

from . import AgentError, layout
from .fsutil import atomic_write
from .paths import ensure_private_dir, home, lab_dir

QCOW2_MAGIC = b"QFI\xfb"


def image_problem(image: str, sha256: str = "") -> str | None:
    """None if ``image`` is a usable base image, else what is wrong and what to do.

    Usable: a readable file with qcow2's magic, which ``qemu-img info`` reads
    as qcow2 with a size, whose backing chain is complete and does not run
    through a lab's overlay (destroying that lab would break it), and, when
    ``sha256`` is given, with that digest.
    """
    problem = _magic_problem(image)
    if problem is None:
        problem = _info_problem(image)
    if problem is None and sha256:
        digest = image_digest(image)
        if digest != sha256.lower():
            problem = (
                f"vm_image {image} has SHA-256 {digest}, not the vm_image_sha256 "
                f"{sha256.lower()} its platform or profile expects — a different or damaged file"
            )
    return problem


def _info_problem(image: str) -> str | None:
    """What ``qemu-img info --backing-chain`` finds wrong (None if qemu-img is missing:
    the machine check says so)."""
    argv = ["qemu-img", "info", "--output=json", "--backing-chain", image]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"qemu-img cannot read vm_image {image}: {reason[0]}"
    chain = json.loads(result.stdout)
    layers = chain if isinstance(chain, list) else [chain]
    top = layers[0]
    if top.get("format") != "qcow2" or not top.get("virtual-size"):
        return f"vm_image {image}: qemu-img reads it as {top.get('format')!r} of size " \
               f"{top.get('virtual-size')} — not a usable qcow2 image"  # fmt: skip
    for layer in layers:
        backing = layer.get("full-backing-filename") or layer.get("backing-filename")
        if backing and _in_a_lab(backing):
            return (
                f"vm_image {image} is backed by {backing}, a lab's overlay: destroying that "
                f"lab breaks it — flatten it with `qemu-img convert -O qcow2 {image} <new>.qcow2`"
            )
    return None


def _in_a_lab(path: str) -> bool:
    """``…/labs/<lab>/disks/<node>.qcow2``: where every lab keeps its overlays."""
    parts = Path(path).parts
    return len(parts) >= 4 and parts[-4] == "labs" and parts[-2] == "disks"


def image_digest(image: str) -> str:
    """The image's SHA-256, cached by path, size and mtime (``cache/image-sha256.json``)."""
    stat = Path(image).stat()
    key = f"{Path(image).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    cache = home() / "cache" / "image-sha256.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        digest = hashlib.sha256()
        with open(image, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        known = {k: v for k, v in known.items() if not k.startswith(f"{Path(image).resolve()}:")}
        known[key] = digest.hexdigest()
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, json.dumps(known, indent=1).encode(), 0o600)
    return str(known[key])


def _magic_problem(image: str) -> str | None:
    path = Path(image)
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except FileNotFoundError:
        hint = {
            "newtlab-host.qcow2": " — build it with `newtlab image build host`",
            "newtlab-router.qcow2": " — build it with `newtlab image build router`",
            # newtron's spec dirs name their Linux test host so: newtlab's host image serves
            "alpine-testhost.qcow2": " — `newtlab image build host --name alpine-testhost.qcow2`"
            " builds newtlab's host image and makes it available under that name",
        }.get(
            path.name,
            " — download or build the image, or fix vm_image in platforms.json or the profile",
        )
        return f"vm_image not found: {image}{hint}"
    except OSError as exc:
        return f"cannot read vm_image {image}: {exc.strerror}"
    if magic != QCOW2_MAGIC:
        return (
            f"vm_image {image} is not a qcow2 image — convert it with "
            f"`qemu-img convert -O qcow2 {image} <new>.qcow2`"
        )
    return None


def boot_file_problem(kind: str, path: str) -> str | None:
    """None if ``path``, the platform's ``vm_<kind>`` (kernel, initrd), can be read."""
    try:
        with Path(path).open("rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        image = Path(path).name.split(".")[0]
        hint = (
            f" — build it with `newtlab image build {image.removeprefix('newtlab-')}`"
            if image in ("newtlab-host", "newtlab-router")
            else f" — fix vm_{kind} in platforms.json"
        )
        return f"vm_{kind} not found: {path}{hint}"
    except OSError as exc:
        return f"cannot read vm_{kind} {path}: {exc.strerror}"
    return None


def link_boot_file(target: str, link: Path) -> None:
    """``link`` (in a lab's directory) to the kernel or initramfs ``target``, replaced
    if there: QEMU opens the link at every start."""
    link.parent.mkdir(parents=True, exist_ok=True)
    staged = link.with_name(f".{link.name}.tmp")
    staged.unlink(missing_ok=True)
    staged.symlink_to(Path(target).resolve())
    staged.replace(link)


def create_overlay(base: str, overlay: Path) -> None:
    """``qemu-img create -f qcow2 -b <abs base> -F qcow2 <overlay>``.

    The backing path is absolute: qemu-img resolves a relative one against
    the overlay's directory.
    """
    overlay.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        str(Path(base).resolve()),
        "-F",
        "qcow2",
        str(overlay),
    ]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise AgentError("qemu-img not found — install qemu-utils") from None
    if result.returncode != 0:
        raise AgentError(f"creating overlay {overlay} failed: {result.stderr.strip()}")


def prepare_lab(lab: str) -> None:
    """The lab's private directories on this host."""
    directory = ensure_private_dir(lab_dir(lab))
    for sub in layout.HOST_SUBDIRS:
        ensure_private_dir(directory / sub)


def exposed_labs() -> list[str]:
    """Lab directories here that other users may enter or read (their consoles and VM NICs
    are sockets in them): one line each, with its mode."""
    labs = home() / "labs"
    found = []
    for directory in sorted(labs.iterdir()) if labs.is_dir() else []:
        for path in (directory, *(directory / sub for sub in layout.HOST_SUBDIRS)):
            with contextlib.suppress(OSError):
                info = path.lstat()
                if stat.S_ISDIR(info.st_mode) and info.st_mode & 0o077:
                    found.append(f"{path} is mode {stat.S_IMODE(info.st_mode):04o}")
    return found


def remove_lab(lab: str) -> None:
    """Every file this host keeps for the lab; the directory too, unless more lives there."""
    directory = lab_dir(lab)
    for sub in layout.HOST_SUBDIRS:
        shutil.rmtree(directory / sub, ignore_errors=True)
    for name in layout.HOST_FILES:
        (directory / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the lab's state lives here too on newtlab's machine
        directory.rmdir()


def write_file(lab: str, relative: str, data: bytes) -> None:
    path = lab_dir(lab) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, 0o600)


def read_file(lab: str, relative: str, offset: int = 0) -> bytes | None:
    """A lab file's bytes from ``offset`` on; None if there is no such file."""
    return _read_from(lab_dir(lab) / relative, offset)


def _read_from(path: Path, offset: int) -> bytes | None:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return None


# Where libvirtd's QEMU driver keeps each domain's log (QEMU's own output): the system
# daemon's, and a user's session daemon's.
LIBVIRT_LOGS = {"system": Path("/var/log/libvirt/qemu"),
                "session": Path.home() / ".cache/libvirt/qemu/log"}  # fmt: skip


def read_libvirt_log(domain: str, daemon: str, offset: int = 0) -> bytes | None:
    """A libvirt domain's log here from ``offset`` on; None if it has none yet."""
    if not domain or "/" in domain or domain.startswith(".") or daemon not in LIBVIRT_LOGS:
        raise AgentError(f"not a domain's log: {daemon} {domain!r}")
    path = LIBVIRT_LOGS[daemon] / f"{domain}.log"
    try:
        return _read_from(path, offset)
    except PermissionError:
        raise AgentError(f"{path}: permission denied (libvirt's logs are root's)") from None
