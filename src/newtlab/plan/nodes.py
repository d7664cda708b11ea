"""Node resolution: which VMs a lab has and how each is configured.

Every device whose platform is not ``device_type: "host"`` becomes one VM.
Host devices are coalesced into shared host VMs (``hostvm-0``, …), one per
distinct profile ``vm_host``, each configured from its first host by name.
Settings resolve profile > platform > built-in defaults (``defaults.json``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import SpecError, SpecErrors
from ..spec.load import Specs
from .dialogs import console_plan
from .ifmap import InterfaceMapError, nic_index
from .model import ConsolePlan, VmSettings
from .pci import most_nics

_LINUX_IFACE = re.compile(r"eth(0|[1-9][0-9]*)")
HOSTVM_PREFIX = "hostvm-"
# An interface numbered beyond what any VM's PCI bus holds is a mistake, not a plan
# to make (``pci_layout`` says how many fit once the node's other devices are known).
MOST_NICS = most_nics(0)


@cache
def builtin_defaults() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("defaults.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@dataclass
class NodeSpec:
    """A VM of the lab before ports, MACs and argv are assigned."""

    name: str
    vm: VmSettings
    pin: str
    custom_map: dict[str, int] | None
    nic_mac: str
    port_device: str
    hosts: list[str] = field(default_factory=list)
    # (device, interface) → NIC index, for every linked interface of this VM
    nic_of: dict[tuple[str, str], int] = field(default_factory=dict)
    # NIC index → (virtual host, its ethN) for every NIC slot of a host VM
    host_nics: dict[int, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Homes:
    """Directories an image path may be relative to."""

    user_home: Path
    newtlab_home: Path


def resolve_image(image: str, spec_dir: Path, homes: Homes) -> str:
    """Absolute image path: ``~/.newtlab/`` → NEWTLAB_HOME, ``~`` → HOME, relative → spec dir."""
    if image.startswith("~/.newtlab/"):
        return str(homes.newtlab_home / image[len("~/.newtlab/") :])
    if image == "~" or image.startswith("~/"):
        return str(homes.user_home / image[2:])
    path = PurePosixPath(image)
    if path.is_absolute():
        return image
    return str(spec_dir / path)


def _boot_file(path: str, spec_dir: Path, homes: Homes) -> str:
    return resolve_image(path, spec_dir, homes) if path else ""


def _resolve_vm(
    specs: Specs, name: str, device: str, homes: Homes, consoles: dict[str, ConsolePlan]
) -> NodeSpec:
    """Settings of the VM named ``name`` configured from topology device ``device``.

    ``consoles`` holds each platform's checked console dialog, made once per platform.
    """
    pf = specs.profiles[device]
    profile = pf.profile
    platform_name = specs.platform_name(device)
    platform = specs.platform_of(device)
    defaults = builtin_defaults()
    common = defaults["common"]
    by_type = defaults["device_types"][platform.device_type]

    image = profile.vm_image or platform.vm_image
    if not image:
        raise SpecError(
            str(pf.path),
            "vm_image",
            f"no vm_image for device {device!r}",
            f'set "vm_image" in platform {platform_name!r} of platforms.json or in this profile',
        )
    creds = platform.vm_credentials
    console_user = creds.user if creds else ""
    console_pass = creds.password if creds else ""
    interface_map = platform.vm_interface_map or by_type["vm_interface_map"]
    if interface_map == "custom" and not platform.vm_interface_map_custom:
        raise SpecError(
            str(specs.directory / "platforms.json"),
            f"platforms.{platform_name}.vm_interface_map_custom",
            'vm_interface_map is "custom" but no custom map is given',
            'add "vm_interface_map_custom": {"<interface>": <nic index>, ...}',
        )
    console = consoles.get(platform_name)
    if console is None:
        console = consoles[platform_name] = console_plan(
            platform.vm_console,
            defaults["consoles"][by_type["console"]],
            console_user,
            console_pass,
            str(specs.directory / "platforms.json"),
            f"platforms.{platform_name}.vm_console",
        )
    vm = VmSettings(
        device_type=platform.device_type,
        platform=platform_name,
        network_os=platform.network_os,
        image=resolve_image(image, specs.directory, homes),
        # A platform's digest is for the platform's image, not one a profile replaced it with.
        image_sha256=profile.vm_image_sha256
        or ("" if profile.vm_image else platform.vm_image_sha256),
        kernel=_boot_file(platform.vm_kernel, specs.directory, homes),
        initrd=_boot_file(platform.vm_initrd, specs.directory, homes),
        kernel_cmdline=platform.vm_kernel_cmdline,
        memory=profile.vm_memory or platform.vm_memory or common["vm_memory"],
        cpus=profile.vm_cpus or platform.vm_cpus or common["vm_cpus"],
        nic_driver=platform.vm_nic_driver or common["vm_nic_driver"],
        disk_driver=platform.vm_disk_driver or common["vm_disk_driver"],
        interface_map=interface_map,
        cpu_features=platform.vm_cpu_features,
        firmware=platform.vm_firmware,
        smbios=list(platform.vm_smbios),
        ssh_user=profile.ssh_user or console_user,
        ssh_pass=profile.ssh_pass or console_pass,
        console=console,
        boot_timeout=platform.vm_boot_timeout or common["vm_boot_timeout"],
        dataplane=platform.dataplane,
        image_release=platform.vm_image_release,
        extra_devices=list(platform.vm_extra_devices),
    )
    return NodeSpec(
        name=name,
        vm=vm,
        pin=profile.vm_host,
        custom_map=platform.vm_interface_map_custom,
        nic_mac=platform.vm_nic_mac or by_type["vm_nic_mac"],
        port_device=device,
    )


def _links_by_device(specs: Specs) -> dict[str, list[str]]:
    ifaces: dict[str, list[str]] = {}
    for link in specs.links:
        for end in (link.a, link.z):
            ifaces.setdefault(end.device, []).append(end.interface)
    return ifaces


def _topology_path(specs: Specs) -> str:
    return str(specs.directory / "topology.json")


def _map_switch_nics(specs: Specs, node: NodeSpec, ifaces: list[str]) -> list[SpecError]:
    errors: list[SpecError] = []
    for iface in ifaces:
        try:
            index = nic_index(node.vm.interface_map, iface, node.custom_map)
            if index >= MOST_NICS:
                raise InterfaceMapError(
                    f"it would be NIC {index}, and a VM has {MOST_NICS} NICs at most"
                )
            node.nic_of[(node.name, iface)] = index
        except InterfaceMapError as exc:
            errors.append(
                SpecError(
                    _topology_path(specs),
                    f"devices.{node.name}.interfaces.{iface}",
                    f"cannot place {node.name}:{iface} on a NIC: {exc}",
                    f"platform {node.vm.platform!r} ({specs.platform_origin(node.port_device)}) "
                    f"uses the {node.vm.interface_map!r} interface map of platforms.json; rename "
                    "the interface, change vm_interface_map or choose another platform",
                )
            )
    return errors


def _map_host_nics(
    specs: Specs, node: NodeSpec, by_device: dict[str, list[str]]
) -> list[SpecError]:
    """Give each virtual host a block of NICs: its ethN is NIC base + N."""
    errors: list[SpecError] = []
    base = 1
    for host in node.hosts:
        numbers: dict[str, int] = {}
        for iface in by_device.get(host, []):
            m = _LINUX_IFACE.fullmatch(iface)
            if m is None:
                errors.append(
                    SpecError(
                        _topology_path(specs),
                        f"devices.{host}.interfaces.{iface}",
                        f"host interface {host}:{iface} must be named ethN",
                        f"virtual hosts use Linux names: eth0, eth1, … ({host} is one: its "
                        f"platform {specs.platform_name(host)!r} ({specs.platform_origin(host)}) "
                        'has device_type "host" in platforms.json)',
                    )
                )
                continue
            if base + int(m.group(1)) >= MOST_NICS:
                errors.append(
                    SpecError(
                        _topology_path(specs),
                        f"devices.{host}.interfaces.{iface}",
                        f"host interface {host}:{iface} would be NIC {base + int(m.group(1))} "
                        f"of {node.name}, and a VM has {MOST_NICS} NICs at most",
                        "number the host's interfaces from eth0 up",
                    )
                )
                continue
            numbers[iface] = int(m.group(1))
        for iface, n in numbers.items():
            node.nic_of[(host, iface)] = base + n
        slots = max(numbers.values(), default=-1) + 1
        for n in range(slots):
            node.host_nics[base + n] = (host, f"eth{n}")
        base += slots
    return errors


def resolve_nodes(specs: Specs, homes: Homes) -> list[NodeSpec]:
    """All VMs of the lab, sorted by name, each with its linked NICs mapped."""
    errors: list[SpecError] = []
    nodes: list[NodeSpec] = []
    consoles: dict[str, ConsolePlan] = {}
    groups: dict[str, list[str]] = {}
    for device in sorted(specs.topology.devices):
        if device.startswith(HOSTVM_PREFIX):
            errors.append(
                SpecError(
                    _topology_path(specs),
                    f"devices.{device}",
                    f"device names starting with {HOSTVM_PREFIX!r} are reserved for host VMs",
                    "rename the device",
                )
            )
            continue
        if specs.platform_of(device).device_type == "host":
            groups.setdefault(specs.profiles[device].profile.vm_host, []).append(device)
            continue
        try:
            nodes.append(_resolve_vm(specs, device, device, homes, consoles))
        except SpecError as exc:
            errors.append(exc)
    for i, pin in enumerate(sorted(groups)):
        hosts = groups[pin]
        try:
            vm = _resolve_vm(specs, f"{HOSTVM_PREFIX}{i}", hosts[0], homes, consoles)
        except SpecError as exc:
            errors.append(exc)
            continue
        vm.hosts = hosts
        vm.vm = vm.vm.model_copy(update={"device_type": "host"})
        nodes.append(vm)

    by_device = _links_by_device(specs)
    for node in nodes:
        if node.hosts:
            errors += _map_host_nics(specs, node, by_device)
        else:
            errors += _map_switch_nics(specs, node, by_device.get(node.name, []))
    if errors:
        raise SpecErrors(errors)
    return sorted(nodes, key=lambda n: n.name)
