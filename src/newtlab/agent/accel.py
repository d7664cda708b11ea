"""Choosing the accelerator: KVM only if it really runs a guest, else TCG.

``/dev/kvm`` existing proves little: under nested virtualization a guest
may hang after kernel decompression, or ``-cpu host`` may abort. So the
probe boots a tiny kernel + initramfs whose init prints a marker, under KVM
with the real ``-cpu host``, time-limited. The verdict is cached per host,
QEMU version and kernel release.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Literal

from .fsutil import atomic_write
from .tools import QEMU_BINARY

Accel = Literal["kvm", "tcg"]

PROBE_MARKER = "NEWTLAB-PROBE-OK"  # printed by the probe guest (image/guest/probe-init.sh)
PROBE_TIMEOUT = 20.0


def qemu_version() -> str:
    try:
        out = subprocess.run(
            [QEMU_BINARY, "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def probe_argv(kernel: Path, initrd: Path, accel: Accel, cpu: str) -> list[str]:
    """QEMU booting the probe guest, its serial console on stdout."""
    return [
        QEMU_BINARY,
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-m",
        "128",
        "-smp",
        "1",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        "console=ttyS0 panic=-1 quiet",
        "-display",
        "none",
        "-nodefaults",
        "-serial",
        "stdio",
        "-no-reboot",
        "-monitor",
        "none",
    ]


def probe_kvm(kernel: Path, initrd: Path, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Boot ``kernel`` + ``initrd`` under KVM with the real ``-cpu host``; (works, why)."""
    argv = probe_argv(kernel, initrd, "kvm", "host")
    started = time.monotonic()
    try:
        result = subprocess.run(argv, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"a KVM guest did not reach userspace within {timeout:.0f} s"
    except OSError as exc:
        return False, f"cannot run QEMU: {exc}"
    if PROBE_MARKER.encode() in result.stdout:
        return True, f"KVM guest booted in {time.monotonic() - started:.1f} s"
    last = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
    return False, f"QEMU under KVM failed: {last[-1] if last else f'exit {result.returncode}'}"


def choose_accel(
    requested: str, cache_file: Path, probe_files: tuple[Path, Path] | None
) -> tuple[Accel, str]:
    """The accelerator to use and a note saying why (empty if as requested)."""
    if requested == "tcg":
        return "tcg", ""
    if requested == "kvm":
        return "kvm", ""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "KVM is not available (/dev/kvm missing or not writable): using TCG"
    key = f"{platform.node()}|{platform.release()}|{qemu_version()}"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        files = probe_files
        if files is None:
            return "tcg", "cannot prove KVM works without the probe kernel: using TCG"
        works, why = probe_kvm(*files)
        cache[key] = {"kvm": works, "why": why}
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file, json.dumps(cache, indent=2).encode())
    verdict = cache[key]
    if verdict["kvm"]:
        return "kvm", ""
    return "tcg", f"KVM does not work on this host ({verdict['why']}): using TCG, which is slower"
