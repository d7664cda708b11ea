"""Debian packages for the guest: resolve exact versions, download, verify, unpack.

Nothing here needs root or touches the host's package state: packages are
fetched with ``apt-get download`` into a cache directory and unpacked with
``dpkg-deb -x``. Every .deb is checked against the SHA256 apt knows for it,
which also lets a build reuse a .deb another cache (or apt's own archive
cache) already holds instead of downloading it again.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import ImageBuildError

KERNEL_META = "linux-image-amd64"
# Two builds of busybox. Debian's "busybox" (dynamically linked) is the
# guest's: its shell runs what the PATH finds, so iproute2's ip wins over the
# ip applet. "busybox-static" starts several times faster under TCG but its
# shell (and env, nsenter, xargs, ...) always runs its own applet for a name
# it has, whatever the PATH: it runs newtlab's own scripts and the KVM probe.
STATIC_BUSYBOX = "busybox-static"
# The guest's userland, then the packages holding the shared libraries its
# binaries need (their DT_NEEDED closure; the builder copies only those
# libraries and fails naming any it cannot find here, never taking one from
# the building machine).
PACKAGES = (
    "busybox", STATIC_BUSYBOX, "dropbear-bin", "iproute2", "iperf3", "tcpdump",
    "libc6",  # busybox (libc, libresolv) and all the others
    "libcrypt1", "zlib1g", "libtomcrypt1", "libtommath1", "libgmp10",  # dropbear
    "libbpf1", "libelf1", "libmnl0", "libbsd0", "libmd0", "libcap2",  # ip
    "libiperf0", "libssl3", "libsctp1",  # iperf3 (libssl3 holds libcrypto, tcpdump's too)
    "libpcap0.8", "libdbus-1-3", "libsystemd0", "libgcrypt20", "libgpg-error0",  # tcpdump
    "liblzma5", "libzstd1", "liblz4-1",  # libsystemd's
    # File transfer over SSH: what the remote end of scp, sftp and rsync runs.
    "openssh-sftp-server",  # /usr/lib/sftp-server, dropbear's SFTP subsystem (sftp; scp's default)
    "openssh-client",  # only its /usr/bin/scp (libc alone): `scp -t/-f`, the remote of `scp -O`
    "rsync", "libacl1", "libpopt0", "libxxhash0",  # rsync (and liblz4, libzstd, libcrypto, libz)
)  # fmt: skip
# The router image's additions (newtlab image build router): Debian's FRR and the
# packages of the libraries its daemons and vtysh need.
FRR_PACKAGES = (
    "frr", "libyang2", "libpcre2-8-0", "libc-ares2", "libjson-c5",
    "libreadline8", "libtinfo6", "libpam0g", "libaudit1", "libcap-ng0",  # vtysh
)  # fmt: skip
APT_STATE = ("/var/lib/apt/lists", "/etc/apt/sources.list", "/etc/apt/sources.list.d",
             "/etc/apt/preferences", "/etc/apt/preferences.d")  # fmt: skip
APT_ARCHIVES = Path("/var/cache/apt/archives")
APT_UPDATE_HINT = "run `apt-get update` (as root) so apt knows Debian 12's packages, then retry"


@dataclass(frozen=True)
class Deb:
    name: str
    version: str
    arch: str
    size: int
    sha256: str

    @property
    def filename(self) -> str:
        """The name ``apt-get download`` gives the file (epoch colon escaped)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def _run(argv: list[str], what: str, cwd: Path | None = None, timeout: float = 600) -> str:
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise ImageBuildError(
            f"{what}: {argv[0]} is not installed. The host image is built from Debian "
            "packages with Debian's apt and dpkg: build it on Debian 12 (or a Debian 12 "
            "container)."
        ) from None
    except subprocess.TimeoutExpired:
        raise ImageBuildError(f"{what}: {argv[0]} did not finish within {timeout:.0f} s") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ImageBuildError(f"{what} failed: {' / '.join(detail[-3:]) or 'no output'}")
    return result.stdout


def apt_fingerprint() -> str:
    """Changes whenever apt's view of available versions may have changed (cheap: stat only)."""
    digest = hashlib.sha256()
    for top in APT_STATE:
        root = Path(top)
        paths = sorted(root.iterdir()) if root.is_dir() else [root]
        for path in paths:
            try:
                info = path.stat()
            except OSError:
                continue
            if path.is_file() and path.name != "lock":
                digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _show(names: Iterable[str]) -> dict[str, dict[str, str]]:
    """``apt-cache show`` of each package's candidate version, as field dicts by name."""
    out = _run(
        ["apt-cache", "show", "--no-all-versions", *names],
        f"looking up Debian packages ({APT_UPDATE_HINT} if this says none found)",
        timeout=120,
    )
    records: dict[str, dict[str, str]] = {}
    for block in out.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z0-9-]+): ?(.*)$", block, flags=re.M))
        if "Package" in fields and fields.get("Architecture") in ("amd64", "all"):
            records.setdefault(fields["Package"], fields)
    return records


def _deb(record: dict[str, str]) -> Deb:
    return Deb(
        record["Package"],
        record["Version"],
        record["Architecture"],
        int(record["Size"]),
        record["SHA256"],
    )


def candidates(names: Iterable[str]) -> list[Deb]:
    """Each named package at apt's candidate version, in order."""
    wanted = list(names)
    records = _show(wanted)
    missing = [name for name in wanted if name not in records]
    if missing:
        raise ImageBuildError(f"apt knows no {', '.join(missing)}: {APT_UPDATE_HINT}.")
    return [_deb(records[name]) for name in wanted]


def resolve(packages: Iterable[str] = PACKAGES) -> list[Deb]:
    """The exact packages to fetch: the kernel ``linux-image-amd64`` depends on
    (naming it exactly: a glob would fetch every version) and the userland."""
    meta = _show([KERNEL_META]).get(KERNEL_META, {})
    match = re.search(r"\b(linux-image-[0-9][^\s,]*-amd64)\b", meta.get("Depends", ""))
    if match is None:
        raise ImageBuildError(f"apt knows no kernel behind {KERNEL_META}: {APT_UPDATE_HINT}.")
    return candidates([match.group(1), *packages])


def _valid(path: Path, deb: Deb) -> bool:
    try:
        if path.stat().st_size != deb.size:
            return False
    except OSError:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == deb.sha256


def reuse_dirs() -> list[Path]:
    """Other places that may already hold the exact .deb files (checked before use)."""
    homes = [Path.home() / ".newtlab"]
    if os.environ.get("NEWTLAB_HOME"):
        homes.insert(0, Path(os.environ["NEWTLAB_HOME"]).expanduser())
    return [*(home / "cache" / "debs" for home in homes), APT_ARCHIVES]


def download(debs: list[Deb], cache: Path, say: Callable[[str], None]) -> list[Path]:
    """Each .deb in ``cache``: verified there, copied from a verified copy elsewhere,
    or fetched with ``apt-get download``."""
    cache.mkdir(parents=True, exist_ok=True)
    wanted: list[Deb] = []
    reused: set[Path] = set()
    for deb in debs:
        path = cache / deb.filename
        if _valid(path, deb):
            continue
        path.unlink(missing_ok=True)
        for other in reuse_dirs():
            source = other / deb.filename
            if source.resolve() != path.resolve() and _valid(source, deb):
                tmp = path.with_name(f".{path.name}.tmp")
                shutil.copyfile(source, tmp)
                os.replace(tmp, path)
                reused.add(other)
                break
        else:
            wanted.append(deb)
    if reused:
        say(f"reusing verified packages from {', '.join(map(str, sorted(reused)))}")
    if wanted:
        size = sum(deb.size for deb in wanted) / 1e6
        say(f"downloading {len(wanted)} Debian packages ({size:.0f} MB) into {cache}")
        # As root, apt hands downloads to its unprivileged _apt user, which
        # cannot write into root's cache: download unsandboxed, as apt itself
        # would after a warning.
        sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
        _run(
            ["apt-get", "download", "-q", *sandbox, *(f"{d.name}={d.version}" for d in wanted)],
            "downloading Debian packages (check that this machine reaches its Debian mirror)",
            cwd=cache,
        )
        bad = [d.filename for d in wanted if not _valid(cache / d.filename, d)]
        if bad:
            raise ImageBuildError(
                f"apt-get download did not produce a verified {', '.join(bad)}: {APT_UPDATE_HINT}."
            )
    return [cache / deb.filename for deb in debs]


def unpack(debs: list[Path], into: Path) -> None:
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(into)], f"unpacking {deb.name}")
