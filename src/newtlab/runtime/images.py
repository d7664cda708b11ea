"""Base images as content: digests (cached), and the KVM probe's files on this machine."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..agent.fsutil import atomic_write
from ..home import cache_dir, images_dir

CHUNK = 1 << 20


def content_digest(path: Path) -> str:
    """The file's SHA-256, remembered by path, size and mtime so a big image is read once."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = cache_dir() / "sha256.json"
    try:
        cache: dict[str, str] = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        sha = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                sha.update(chunk)
        cache[key] = sha.hexdigest()
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file, json.dumps(cache, indent=1).encode())
    return cache[key]


def probe_files() -> tuple[Path, Path] | None:
    """The KVM probe's kernel and initramfs, if the host image has been built here."""
    from ..image import probe_artifacts

    return probe_artifacts(images_dir())
