"""Startup configurations: ``configs/<device>.cfg``, rendered, and how the VM receives it.

The file is a Jinja2 template over the node's variables (those of boot
patches, plus ``hostname``, ``interfaces`` from topology.json with the far
end's address, the device's ``profile`` and the management NIC's address on
QEMU's user network); it may include other templates of ``configs/`` (one
per role, say). The platform's
``vm_startup_config`` says how it is delivered: on an ISO, as a NoCloud
seed, or typed on the console.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..agent import layout
from ..errors import SpecError, SpecErrors
from ..spec.load import Specs
from ..templates import TemplateError, render
from .model import StartupConfigPlan

CONFIG_DIR = "configs"
CONFIG_SUFFIX = ".cfg"
# QEMU's user network as every VM's management NIC sees it.
MGMT_ADDRESS = "10.0.2.15/24"
MGMT_GATEWAY = "10.0.2.2"
NOCLOUD_LABEL = "cidata"


def config_variables(specs: Specs, device: str, base: dict[str, Any]) -> dict[str, Any]:
    """The patch variables plus what a device's configuration needs."""
    devices = specs.topology.devices
    interfaces = []
    for name, iface in sorted(devices[device].interfaces.items()):
        peer_node, _, peer_iface = (iface.link or "").partition(":")
        far = devices[peer_node].interfaces.get(peer_iface) if peer_node in devices else None
        ip = iface.ip or ""
        interfaces.append({
            "name": name, "ip": ip, "address": ip.split("/", 1)[0], "link": iface.link or "",
            "peer_node": peer_node, "peer": (far.ip or "").split("/", 1)[0] if far else "",
        })  # fmt: skip
    return {
        **base,
        "hostname": device,
        "interfaces": interfaces,
        "profile": specs.profiles[device].profile.model_dump(),
        "mgmt_address": MGMT_ADDRESS,
        "mgmt_gateway": MGMT_GATEWAY,
    }


def check_config_files(specs: Specs, vm_devices: set[str]) -> None:
    """Every ``configs/*.cfg`` belongs to a device that is a VM of its own."""
    directory = specs.directory / CONFIG_DIR
    if not directory.is_dir():
        return
    errors = []
    for path in sorted(directory.glob(f"*{CONFIG_SUFFIX}")):
        device = path.name.removesuffix(CONFIG_SUFFIX)
        if device not in specs.topology.devices:
            errors.append(SpecError(str(path), "", f"no device {device!r} in topology.json",
                                    "name the file after a device, or remove it"))  # fmt: skip
        elif device not in vm_devices:
            errors.append(SpecError(
                str(path), "", f"{device!r} is a virtual host: it has no VM to configure",
                "configure it from its host VM (vm_post_boot), or remove the file (its "
                f"platform {specs.platform_name(device)!r}, from {specs.platform_origin(device)}"
                ', has device_type "host" in platforms.json)',
            ))  # fmt: skip
    if errors:
        raise SpecErrors(errors)


def plan_startup_config(
    specs: Specs, lab: str, node: str, device: str, variables: dict[str, Any], has_login: bool
) -> StartupConfigPlan | None:
    """The node's startup configuration, rendered; None without a config file."""
    path = specs.directory / CONFIG_DIR / f"{device}{CONFIG_SUFFIX}"
    platform_name = specs.platform_name(device)
    platform = specs.platform_of(device)
    method = platform.vm_startup_config
    if not path.is_file():
        if method is not None and method.method == "nocloud":
            # A seed all the same: the hostname and the lab's key are what a cloud image needs.
            return _nocloud(lab, node, "", "#cloud-config\n")
        return None
    if method is None:
        raise SpecError(
            str(path), "", f"platform {platform_name!r} takes no startup configuration",
            'set "vm_startup_config" in the platform in platforms.json (see docs/boot.md), '
            f"choose another platform ({specs.platform_origin(device)}), or remove the file",
        )  # fmt: skip
    content = _render(path, variables)
    if method.method == "nocloud":
        return _nocloud(lab, node, str(path), content)
    if method.method == "console" and not has_login:
        raise SpecError(
            str(path), "", f"platform {platform_name!r} pushes configs on the console but "
            "has no console login dialog", "give its vm_console a login in platforms.json, "
            f"or choose another method or platform ({specs.platform_origin(device)})",
        )  # fmt: skip
    iso = method.method == "iso"
    return StartupConfigPlan(
        method=method.method,
        source=str(path),
        content=content,
        iso=layout.config_iso(node) if iso else "",
        label=method.label,
        drive=method.drive,
        files={method.file.lstrip("/"): content} if iso else {},
        directories=method.directories if iso else [],
        before=method.before,
        after=method.after,
        prompt=method.prompt,
        fail=method.fail,
        timeout=method.timeout,
    )


def _nocloud(lab: str, node: str, source: str, user_data: str) -> StartupConfigPlan:
    """A NoCloud seed; the lab's SSH key joins its meta-data at deploy (none exists yet)."""
    return StartupConfigPlan(
        method="nocloud",
        source=source,
        content=user_data,
        iso=layout.config_iso(node),
        label=NOCLOUD_LABEL,
        files={
            "meta-data": f"instance-id: {lab}-{node}\nlocal-hostname: {node}\n",
            "user-data": user_data,
        },
    )


def _render(path: Path, variables: dict[str, Any]) -> str:
    try:
        return render(path.read_text(), variables, path.parent)
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), "", f"cannot read it: {exc}", "save it as UTF-8 text") from None
    except TemplateError as exc:
        raise SpecError(str(path), "(template)", str(exc), "fix the Jinja2 template") from None
