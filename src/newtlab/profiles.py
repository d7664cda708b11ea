"""Writing a running lab's facts into newtron profiles, and taking them out again.

Deploy sets ``mgmt_ip``, ``ssh_port``, ``mac``, ``console_port`` (only for a lab
with TCP consoles: a stale one is removed) and, when missing,
``ssh_user``/``ssh_pass`` in each device's profile so newtron can reach the VM.
The original bytes are kept in the lab directory and put back on destroy —
unless the profile was edited while the lab ran, in which case only newtlab's
fields are removed, so the user's edit survives.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .agent.fsutil import atomic_write
from .plan.model import NodePlan, Plan
from .state import ProfilePatch

ORIGINALS = "profiles"
SPEC_DIR_FILE = "spec_dir.txt"  # beside the originals: where they go back without a state
WRITTEN_FIELDS = ("ssh_port", "console_port", "mac")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def patched_profile(
    profile: dict[str, Any], node: NodePlan, device: str
) -> tuple[dict[str, Any], bool]:
    """The profile of ``device`` (the node, or a virtual host in it) with the node's runtime
    facts; True if credentials were added. A virtual host is reached through its host VM, and
    its MAC is its own eth0's."""
    out = dict(profile)
    out["mgmt_ip"] = node.ssh_bind  # where newtron reaches the VM's SSH forward
    out["ssh_port"] = node.ssh_port
    if node.console_port is None:  # nothing listens on a TCP port: say none
        out.pop("console_port", None)
    else:
        out["console_port"] = node.console_port
    added = not profile.get("ssh_user")
    if added:
        out["ssh_user"] = node.ssh_user
        out["ssh_pass"] = node.ssh_pass
    vhost = next((v for v in node.vhosts if v.name == device), None)
    out["mac"] = vhost.interfaces[0].mac if vhost and vhost.interfaces else node.mac
    return out, added


def patch_profiles(plan: Plan, lab_dir: Path) -> list[ProfilePatch]:
    """Patch the profile of every device of the plan; originals go to ``lab_dir/profiles``."""
    keep = lab_dir / ORIGINALS
    keep.mkdir(exist_ok=True, mode=0o700)
    atomic_write(keep / SPEC_DIR_FILE, plan.spec_dir.encode(), 0o600)
    records = []
    for node in plan.nodes:
        for device in node.hosts or [node.name]:
            path = Path(plan.spec_dir) / "profiles" / f"{device}.json"
            original = path.read_bytes()
            saved = keep / f"{device}.json"
            if not saved.exists():  # a re-patch must not overwrite the true original
                atomic_write(saved, original, 0o600)
            else:
                original = saved.read_bytes()
            profile = json.loads(original)
            new, added = patched_profile(profile, node, device)
            data = (json.dumps(new, indent=4) + "\n").encode()
            atomic_write(path, data)
            records.append(
                ProfilePatch(
                    device=device,
                    path=str(path),
                    written_sha256=_sha(data),
                    added_credentials=added,
                    original_mgmt_ip=profile.get("mgmt_ip"),
                )
            )
    return records


def restore_profiles(plan: Plan, records: list[ProfilePatch], lab_dir: Path) -> list[str]:
    """Put back every profile deploy patched; one warning per profile not restored exactly.

    Originals saved without a record (a deploy killed between writing a
    profile and saving state) are restored too.
    """
    warnings = []
    by_device = {r.device: r for r in records}
    keep = lab_dir / ORIGINALS
    saved = sorted(p.stem for p in keep.glob("*.json")) if keep.is_dir() else []
    for device in saved:
        record = by_device.get(device)
        path = Path(record.path) if record else Path(plan.spec_dir) / "profiles" / f"{device}.json"
        warning = _restore_one(path, keep / f"{device}.json", record)
        if warning:
            warnings.append(warning)
    return warnings


def restore_without_state(lab_dir: Path) -> list[str]:
    """Put back the saved originals when the lab's state is unreadable (no records:
    a profile is restored whole); one warning per profile touched."""
    keep = lab_dir / ORIGINALS
    try:
        spec_dir = Path((keep / SPEC_DIR_FILE).read_text())
    except OSError:
        return []
    warnings = []
    for saved in sorted(keep.glob("*.json")):
        path = spec_dir / "profiles" / saved.name
        warning = _restore_one(path, saved, None)
        warnings.append(warning or f"{path}: restored from its original (the state was unreadable)")
    return warnings


def _restore_one(path: Path, saved: Path, record: ProfilePatch | None) -> str | None:
    original = saved.read_bytes()
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        return f"{path}: profile was removed while the lab ran; not recreated"
    if current == original:  # already restored (a destroy that is being retried)
        return None
    if record is None or _sha(current) == record.written_sha256:
        atomic_write(path, original)
        return None
    # Edited while the lab ran: remove only what newtlab wrote.
    try:
        profile = json.loads(current)
    except json.JSONDecodeError:
        return f"{path}: edited while the lab ran and no longer valid JSON; left as it is"
    for field in WRITTEN_FIELDS:
        profile.pop(field, None)
    if record.added_credentials:
        profile.pop("ssh_user", None)
        profile.pop("ssh_pass", None)
    if record.original_mgmt_ip is None:
        profile.pop("mgmt_ip", None)
    else:
        profile["mgmt_ip"] = record.original_mgmt_ip
    atomic_write(path, (json.dumps(profile, indent=4) + "\n").encode())
    return f"{path}: edited while the lab ran; removed newtlab's fields and kept your changes"
