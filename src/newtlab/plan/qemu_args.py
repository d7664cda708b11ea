"""One rendering of a node plan: the exact QEMU argv that starts it.

The argv is run with the lab's state directory as working directory (see
``layout``). ``-name newtlab:<lab>:<node>`` makes every process findable.
"""

from __future__ import annotations

from ..agent import layout
from ..agent.tools import QEMU_BINARY
from . import pci
from .model import LOOPBACK, Accel, NicPlan, NodePlan

UEFI_FIRMWARE = "/usr/share/ovmf/OVMF.fd"  # Debian's ovmf package

# CPU feature flags QEMU's TCG cannot emulate; asking for them only yields
# warnings, so a TCG plan leaves them out. Matched as prefixes.
TCG_UNSUPPORTED_FEATURES = ("avx512", "amx", "vmx", "svm", "hle", "rtm", "sgx", "pks", "kvm")


def cpu_model(features: str, accel: Accel) -> str:
    """``host[,features]`` under KVM; ``max`` plus what TCG accepts otherwise."""
    flags = [f.strip() for f in features.split(",") if f.strip()]
    if accel == "kvm":
        return ",".join(["host", *flags])
    kept = [f for f in flags if not f.lstrip("+-").startswith(TCG_UNSUPPORTED_FEATURES)]
    return ",".join(["max", *kept])


def nic_device(driver: str, nic: NicPlan) -> str:
    slot = pci.parse(nic.pci)
    parts = [driver, f"mac={nic.mac}", f"bus={slot.qemu_bus}", f"addr={slot.slot:#x}", "romfile="]
    if nic.index == 0 or nic.listen is not None:
        parts.insert(1, f"netdev={nic.netdev_id}")
    return ",".join(parts)


# The controller a disk bus needs on the PCI bus, and the device of the disk on it.
_CONTROLLERS = {
    "sata": ("ahci,id=disks", "ide-hd,drive=disk0,bus=disks.0"),
    "scsi": ("virtio-scsi-pci,id=disks", "scsi-hd,drive=disk0,bus=disks.0"),
}


def mgmt_netdev(node: NodePlan) -> str:
    """The management NIC's backend: QEMU's user network, forwarding SSH to the guest."""
    return f"user,id=mgmt,hostfwd=tcp:{node.ssh_bind}:{node.ssh_port}-:22"


def _disk(node: NodePlan) -> list[str]:
    """The overlay on the platform's bus. QEMU places a controller given no address (AHCI
    for ``sata``, virtio-scsi for ``scsi``), like a virtio disk, in the lowest free slot
    when its ``-device`` comes: so the argv gives it after every NIC, whose slots the plan
    chose (``pci``), and after the extra devices, as QEMU orders a virtio disk."""
    overlay = layout.overlay(node.name)
    if node.disk_driver in _CONTROLLERS:
        controller, disk = _CONTROLLERS[node.disk_driver]
        return ["-device", controller, "-drive", f"if=none,id=disk0,file={overlay},"
                f"format=qcow2,node-name={layout.DISK_NODE}", "-device", disk]  # fmt: skip
    return [
        "-drive",
        f"file={overlay},if={node.disk_driver},format=qcow2,node-name={layout.DISK_NODE}",
    ]


def _kernel(node: NodePlan) -> list[str]:
    """A direct boot: the kernel (and initramfs) through their links in the lab."""
    if not node.kernel:
        return []
    argv = ["-kernel", layout.boot_file(node.name, "kernel")]
    if node.initrd:
        argv += ["-initrd", layout.boot_file(node.name, "initrd")]
    return argv + (["-append", node.kernel_cmdline] if node.kernel_cmdline else [])


def qemu_argv(lab: str, node: NodePlan, accel: Accel) -> list[str]:
    argv = [
        QEMU_BINARY,
        "-name",
        f"newtlab:{lab}:{node.name}",
        "-machine",
        "pc",
        "-accel",
        accel,
        "-cpu",
        cpu_model(node.cpu_features, accel),
        "-m",
        str(node.memory),
        "-smp",
        str(node.cpus),
        "-display",
        "none",
        "-chardev",
        # Reached through the host (an SSH forward on a server), never directly.
        f"socket,id=console,{_console_address(node)},server=on,wait=off,"
        f"logfile={layout.console_log(node.name)},logappend=on",
        "-serial",
        "chardev:console",
        "-qmp",
        f"unix:{layout.qmp_socket(node.name)},server=on,wait=off",
        "-monitor",
        "none",
        "-pidfile",
        layout.pidfile(node.name),
        "-netdev",
        mgmt_netdev(node),
    ]
    if node.firmware == "uefi":
        argv += ["-bios", UEFI_FIRMWARE]
    argv += _kernel(node)
    for smbios in node.smbios:
        argv += ["-smbios", smbios]
    for bus, slot in enumerate(node.pci_bridges, start=1):
        bridge = f"pci-bridge,id={pci.bridge_id(bus)},chassis_nr={bus},bus=pci.0,addr={slot:#x}"
        argv += ["-device", bridge]
    for nic in node.nics:
        if nic.index and nic.listen is not None:
            # The VM listens and its host's bridge dials it: QEMU re-accepts after every
            # drop, so the link heals when either the VM or the bridge restarts. A Unix
            # socket in the lab directory: no other user can take the NIC.
            argv += ["-netdev", f"stream,id={nic.netdev_id},server=on,addr.type=unix,"
                     f"addr.path={nic.listen}"]  # fmt: skip
        argv += ["-device", nic_device(node.nic_driver, nic)]
    for device in node.extra_devices:
        argv += ["-device", device]
    return argv + _disk(node) + _config_drive(node)


def _console_address(node: NodePlan) -> str:
    if node.console_port is None:  # in the lab directory: its owner's only
        return f"path={layout.console_socket(node.name)}"
    return f"host={LOOPBACK},port={node.console_port}"


def _config_drive(node: NodePlan) -> list[str]:
    """The startup-configuration ISO: an IDE CD-ROM (secondary master) or a USB stick.
    Neither takes a PCI slot: IDE and USB (UHCI) are functions of the PIIX3."""
    config = node.startup_config
    if config is None or not config.iso:
        return []
    if config.drive == "usb":
        drive = f"if=none,id=config,file={config.iso},format=raw,readonly=on"
        return ["-usb", "-drive", drive, "-device", "usb-storage,drive=config"]
    return ["-drive", f"file={config.iso},if=ide,index=2,media=cdrom,format=raw"]


def held_argv(argv: list[str], machine: str) -> list[str]:
    """``argv`` on the versioned machine type ``machine``, its CPUs held (``-S``) until a
    saved state is loaded into it."""
    held = list(argv)
    held[held.index("-machine") + 1] = machine
    return [*held, "-S"]
