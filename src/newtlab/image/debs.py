"""Debian packages for the guest: resolve exact names, download, unpack (no root needed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import ImageBuildError

KERNEL_META = "linux-image-amd64"
PACKAGES = ["busybox-static", "dropbear-bin", "libtomcrypt1", "libtommath1", "libgmp10",
            "libc6", "libcrypt1", "zlib1g"]  # fmt: skip


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=600)
    except FileNotFoundError:
        raise ImageBuildError(
            f"{what}: {argv[0]} not found — this needs Debian's apt and dpkg"
        ) from None
    if result.returncode != 0:
        raise ImageBuildError(f"{what} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def kernel_package() -> str:
    """The exact kernel package ``linux-image-amd64`` depends on (a glob would fetch all)."""
    out = _run(["apt-cache", "depends", KERNEL_META], "looking up the kernel package")
    match = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)", out)
    if match is None:
        raise ImageBuildError(
            "apt knows no linux-image-amd64 — run `apt-get update` (Debian 12 package lists needed)"
        )
    return match.group(1)


def versions(packages: list[str]) -> dict[str, str]:
    """Candidate version of each package, as apt would download it."""
    out = _run(["apt-cache", "policy", *packages], "looking up package versions")
    found: dict[str, str] = {}
    current = ""
    for line in out.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
        elif "Candidate:" in line and current:
            found[current] = line.split("Candidate:")[1].strip()
    missing = [p for p in packages if found.get(p) in (None, "(none)")]
    if missing:
        raise ImageBuildError(
            f"apt has no candidate for {', '.join(missing)} — run `apt-get update`"
        )
    return found


def download(packages: dict[str, str], cache: Path) -> list[Path]:
    """``apt-get download`` each ``name=version`` not yet in ``cache``; the .deb paths."""
    cache.mkdir(parents=True, exist_ok=True)
    debs = []
    wanted = []
    for name, version in sorted(packages.items()):
        quoted = version.replace(":", "%3a")
        path = cache / f"{name}_{quoted}_amd64.deb"
        debs.append(path)
        if not path.exists():
            wanted.append(f"{name}={version}")
    if wanted:
        # apt's sandbox user cannot write into a root-owned cache; downloading
        # there unsandboxed is what apt itself falls back to.
        env_opts = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
        _run(["apt-get", "download", "-q", *env_opts, *wanted], "downloading packages", cwd=cache)
    missing = [p.name for p in debs if not p.exists()]
    if missing:
        raise ImageBuildError(f"apt-get download did not produce {', '.join(missing)}")
    return debs


def unpack(debs: list[Path], into: Path) -> None:
    if shutil.which("dpkg-deb") is None:
        raise ImageBuildError("dpkg-deb not found — this needs Debian's dpkg")
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(into)], f"unpacking {deb.name}")
