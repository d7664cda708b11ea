"""One rendering of a node plan for libvirt: the domain XML that runs it.

The same VM ``qemu_args`` gives QEMU — machine, CPU, memory, firmware, SMBIOS,
disk bus, NIC models, MACs and PCI addresses — as libvirt 9.0 (Debian 12)
defines it, with every PCI device at an explicit address so the guest sees
the tree the plan (and the boot patches' ``pci_addrs``) promise:

- VGA stays at slot 2, as under plain ``-machine pc``; libvirt's memballoon
  and USB controller are left out, so they take no slot a NIC was given.
- Devices QEMU would place itself (``vm_extra_devices``, then the disk or
  its controller) get the lowest free slots of bus 0 in that order, as QEMU
  gives them (``tests/unit/test_qemu_pci.py`` measures it).
- A linked NIC is ``<interface type='server'>`` on its loopback port:
  libvirt passes ``-netdev socket,listen=``, which re-accepts after every
  drop (measured), so the host's bridge dials it as it dials a Unix socket.

Where libvirt 9.0 has no element that works, ``<qemu:commandline>`` passes
QEMU's own arguments, each for a reason given beside it: the management NIC
(SSH forwarding needs ``hostfwd``; ``<portForward>`` needs passt, which
Debian 12 builds without), a NIC linked to nothing (no backend), an extra
device libvirt has no element for, an SMBIOS field its ``<sysinfo>`` lacks.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ..agent import layout
from . import pci
from .model import LOOPBACK, Accel, NicPlan, NodePlan
from .qemu_args import UEFI_FIRMWARE, cpu_model, mgmt_netdev, nic_device

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
NEWTLAB_NS = "https://newtlab.dev/xmlns/libvirt/1"
EMULATOR = "/usr/bin/qemu-system-x86_64"

# NIC drivers of the platforms (QEMU device names) → libvirt's model names.
NIC_MODELS = {"virtio-net-pci": "virtio", "e1000": "e1000", "e1000e": "e1000e",
              "vmxnet3": "vmxnet3", "rtl8139": "rtl8139"}  # fmt: skip
# A disk bus → the guest device name libvirt gives its first disk.
DISK_TARGETS = {"virtio": "vda", "ide": "hda", "sata": "sda", "scsi": "sda"}
# -smbios type=N → libvirt's <sysinfo> block and the entries the 9.0 schema allows there.
SYSINFO = {
    "0": ("bios", ("vendor", "version", "date", "release")),
    "1": ("system", ("manufacturer", "product", "version", "serial", "uuid", "sku", "family")),
    "2": ("baseBoard", ("manufacturer", "product", "version", "serial", "asset", "location")),
    "3": ("chassis", ("manufacturer", "version", "serial", "asset", "sku")),
}


@dataclass(frozen=True)
class DomainIdentity:
    """Who a domain belongs to: a home (by a short id of its path), a lab, a node."""

    home_id: str
    lab: str
    node: str
    version: str

    @property
    def name(self) -> str:
        """Unique on a libvirt daemon shared by several homes and labs."""
        return f"newtlab-{self.home_id}-{self.lab}-{self.node}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _pci_address(parent: ET.Element, slot: pci.PciSlot) -> None:
    _sub(parent, "address", type="pci", domain="0x0000", bus=f"{slot.bus:#04x}",
         slot=f"{slot.slot:#04x}", function="0x0")  # fmt: skip


def free_slots(node: NodePlan) -> list[pci.PciSlot]:
    """The bus-0 slots QEMU gives the devices the argv leaves unaddressed: the extras in
    order, then the disk or its controller (none for IDE)."""
    taken = {pci.parse(nic.pci) for nic in node.nics} | {
        pci.PciSlot(0, s) for s in node.pci_bridges
    }
    free = [pci.PciSlot(0, s) for s in range(pci.FIRST_SLOT, pci.LAST_SLOT + 1)]
    free = [slot for slot in free if slot not in taken]
    return free[: pci.unaddressed_devices(node.disk_driver, node.extra_devices)]


class _Domain:
    """The XML of one node, built element by element; ``args`` are QEMU's own."""

    def __init__(self, node: NodePlan, accel: Accel, lab_dir: str) -> None:
        self.node, self.accel, self.lab_dir = node, accel, lab_dir
        self.root = ET.Element("domain", type="kvm" if accel == "kvm" else "qemu")
        self.args: list[str] = []

    def path(self, relative: str) -> str:
        return posixpath.join(self.lab_dir, relative)

    def head(self, identity: DomainIdentity) -> None:
        node = self.node
        _sub(self.root, "name", identity.name)
        _sub(self.root, "title", f"newtlab lab {identity.lab}, node {identity.node}")
        _sub(_sub(self.root, "metadata"), f"{{{NEWTLAB_NS}}}node", home=identity.home_id,
             lab=identity.lab, node=identity.node, version=identity.version)  # fmt: skip
        _sub(self.root, "memory", str(node.memory), unit="MiB")
        _sub(self.root, "vcpu", str(node.cpus))
        self.sysinfo()
        os_ = _sub(self.root, "os")
        _sub(os_, "type", "hvm", arch="x86_64", machine="pc")
        if node.firmware == "uefi":  # -bios: a ROM, not pflash with NVRAM
            _sub(os_, "loader", UEFI_FIRMWARE, type="rom", readonly="yes")
        if node.kernel:  # a direct boot, through the node's links in the lab (qemu_args)
            _sub(os_, "kernel", self.path(layout.boot_file(node.name, "kernel")))
            if node.initrd:
                _sub(os_, "initrd", self.path(layout.boot_file(node.name, "initrd")))
            if node.kernel_cmdline:
                _sub(os_, "cmdline", node.kernel_cmdline)
        if self.root.find("sysinfo") is not None:
            _sub(os_, "smbios", mode="sysinfo")
        features = _sub(self.root, "features")
        _sub(features, "acpi")  # without it libvirt passes -no-acpi: no ACPI powerdown
        _sub(features, "apic")
        self.cpu()
        for event, action in (("poweroff", "destroy"), ("reboot", "restart"), ("crash", "destroy")):
            _sub(self.root, f"on_{event}", action)

    def sysinfo(self) -> None:
        blocks: dict[str, ET.Element] = {}
        for spec in self.node.smbios:
            fields = dict(part.partition("=")[::2] for part in spec.split(","))
            block, allowed = SYSINFO.get(fields.pop("type", ""), ("", ()))
            if not block or not set(fields) <= set(allowed):
                self.args += ["-smbios", spec]  # what <sysinfo> cannot say
                continue
            if not blocks:
                blocks[""] = ET.Element("sysinfo", type="smbios")
            if block not in blocks:
                blocks[block] = _sub(blocks[""], block)
            parent = blocks[block]
            for name, value in fields.items():
                _sub(parent, "entry", value, name=name)
        if blocks:
            self.root.append(blocks[""])

    def cpu(self) -> None:
        model = cpu_model(self.node.cpu_features, self.accel).split(",")
        if self.accel == "kvm":
            cpu = _sub(self.root, "cpu", mode="host-passthrough", check="none", migratable="off")
        else:
            cpu = _sub(self.root, "cpu", mode="maximum", check="none")
        for flag in model[1:]:
            name, _, value = flag.lstrip("+-").partition("=")
            off = flag.startswith("-") or value in ("off", "false")
            _sub(cpu, "feature", policy="disable" if off else "require", name=name)

    def devices(self) -> None:
        node = self.node
        devices = _sub(self.root, "devices")
        _sub(devices, "emulator", EMULATOR)
        unaddressed = iter(free_slots(node))
        for bus, slot in enumerate(node.pci_bridges, start=1):
            bridge = _sub(devices, "controller", type="pci", index=str(bus), model="pci-bridge")
            _sub(bridge, "model", name="pci-bridge")
            _sub(bridge, "target", chassisNr=str(bus))
            _pci_address(bridge, pci.PciSlot(0, slot))
        for nic in node.nics:
            self.nic(devices, nic)
        for extra in node.extra_devices:
            self.extra(devices, extra, next(unaddressed))
        self.disk(devices, next(unaddressed, None))
        self.config_drive(devices)
        self.console(devices)
        video = _sub(devices, "video")  # slot 2, as under -machine pc
        _sub(video, "model", type="vga", vram="16384", heads="1", primary="yes")
        _pci_address(video, pci.PciSlot(0, 2))
        if self.root.find("devices/controller[@type='usb']") is None:
            _sub(devices, "controller", type="usb", index="0", model="none")
        _sub(devices, "memballoon", model="none")

    def nic(self, devices: ET.Element, nic: NicPlan) -> None:
        node = self.node
        if nic.index == 0:  # SSH forwarding: hostfwd, which libvirt 9.0 cannot express
            self.args += ["-netdev", mgmt_netdev(node), "-device", nic_device(node.nic_driver, nic)]
            return
        if nic.listen is None or node.nic_driver not in NIC_MODELS:
            # A NIC linked to nothing has no backend (libvirt always gives one); a model
            # libvirt does not know is passed as QEMU names it.
            self.args += ["-device", nic_device(node.nic_driver, nic)]
            return
        address, _, port = nic.listen.rpartition(":")
        if not port.isdigit():
            raise ValueError(f"{node.name} {nic.guest}: a libvirt NIC listens on a TCP port, "
                             f"not {nic.listen!r}")  # fmt: skip
        interface = _sub(devices, "interface", type="server")
        _sub(interface, "mac", address=nic.mac)
        _sub(interface, "source", address=address or LOOPBACK, port=port)
        _sub(interface, "model", type=NIC_MODELS[node.nic_driver])
        _sub(interface, "rom", enabled="no")
        _sub(interface, "alias", name=f"ua-{nic.netdev_id}")
        _pci_address(interface, pci.parse(nic.pci))

    def extra(self, devices: ET.Element, device: str, slot: pci.PciSlot) -> None:
        if device == "virtio-rng-pci":
            rng = _sub(devices, "rng", model="virtio")
            _sub(rng, "backend", "/dev/urandom", model="random")
            _pci_address(rng, slot)
        else:  # as the platform wrote it, at the slot QEMU would have given it
            self.args += ["-device", f"{device},bus=pci.0,addr={slot.slot:#x}"]

    def disk(self, devices: ET.Element, slot: pci.PciSlot | None) -> None:
        bus = self.node.disk_driver
        disk = _sub(devices, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type="qcow2")
        _sub(disk, "source", file=self.path(layout.overlay(self.node.name)))
        _sub(disk, "target", dev=DISK_TARGETS[bus], bus=bus)
        if bus == "virtio":
            assert slot is not None
            _pci_address(disk, slot)
        elif bus in ("sata", "scsi"):
            assert slot is not None
            controller = _sub(devices, "controller", type=bus, index="0")
            if bus == "scsi":
                controller.set("model", "virtio-scsi")
            _pci_address(controller, slot)

    def config_drive(self, devices: ET.Element) -> None:
        """The startup-configuration ISO: the IDE secondary master, or a USB stick on the
        PIIX3's UHCI (01.2): neither takes a slot of its own."""
        config = self.node.startup_config
        if config is None or not config.iso:
            return
        usb = config.drive == "usb"
        drive = _sub(devices, "disk", type="file", device="disk" if usb else "cdrom")
        _sub(drive, "driver", name="qemu", type="raw")
        _sub(drive, "source", file=self.path(config.iso))
        _sub(drive, "target", dev="sdb" if usb else "hdc", bus="usb" if usb else "ide")
        _sub(drive, "readonly")
        if usb:
            _sub(devices, "controller", type="usb", index="0", model="piix3-uhci")
        else:
            _sub(drive, "address", type="drive", controller="0", bus="1", target="0", unit="0")

    def console(self, devices: ET.Element) -> None:
        """The serial console where the argv puts it (a Unix socket in the lab directory,
        or raw TCP on loopback), its output logged as ``console.log``."""
        node = self.node
        for tag in ("serial", "console"):
            if node.console_port is None:
                element = _sub(devices, tag, type="unix")
                _sub(
                    element, "source", mode="bind", path=self.path(layout.console_socket(node.name))
                )
            else:
                element = _sub(devices, tag, type="tcp")
                _sub(element, "source", mode="bind", host=LOOPBACK, service=str(node.console_port))
                _sub(element, "protocol", type="raw")
            if tag == "serial":
                _sub(element, "log", file=self.path(layout.console_log(node.name)), append="on")
                target = _sub(element, "target", type="isa-serial", port="0")
                _sub(target, "model", name="isa-serial")
            else:
                _sub(element, "target", type="serial", port="0")

    def commandline(self) -> None:
        if self.args:
            line = _sub(self.root, f"{{{QEMU_NS}}}commandline")
            for arg in self.args:
                _sub(line, f"{{{QEMU_NS}}}arg", value=arg)


def domain_xml(identity: DomainIdentity, node: NodePlan, accel: Accel, lab_dir: str) -> str:
    """The domain of ``node``, its files in ``lab_dir`` (absolute, on the host running it)."""
    domain = _Domain(node, accel, lab_dir)
    domain.head(identity)
    domain.devices()
    domain.commandline()
    ET.register_namespace("qemu", QEMU_NS)
    ET.register_namespace("newtlab", NEWTLAB_NS)
    ET.indent(domain.root)
    return ET.tostring(domain.root, encoding="unicode") + "\n"
