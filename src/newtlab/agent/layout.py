"""Where files live inside a lab's directory (paths relative to it).

Each host that runs part of a lab keeps its share in its own
``labs/<lab>/`` (``HOST_SUBDIRS`` and ``HOST_FILES``); the machine running
newtlab keeps the lab's state there too (``STATE``, ``SSH_KEY``, original
profiles). QEMU is started with the lab directory as its working directory,
so its argv uses these relative paths: the same argv works on any host, and
Unix socket paths stay far below their 108-byte limit.
"""

from __future__ import annotations

STATE = "state.json"
BRIDGE_CONFIG = "bridge.json"
BRIDGE_SOCKET = "newtlink.sock"
BRIDGE_CONTROL = "newtlink-control.sock"
LINK_SETTINGS = "links.json"  # the bridge's link settings (impairment, cables pulled)
BRIDGE_LOG = "logs/newtlink.log"
SSH_KEY = "ssh/id_ed25519"
DISKS = "disks"  # overlays and startup ISOs (a libvirt lab's storage pool)
HOST_SUBDIRS = (DISKS, "qemu", "logs")
HOST_FILES = (BRIDGE_CONFIG, BRIDGE_SOCKET, BRIDGE_CONTROL, LINK_SETTINGS)
DISK_NODE = "overlay"  # the overlay's block node in QEMU: snapshot jobs name it


def overlay(node: str) -> str:
    return f"{DISKS}/{node}.qcow2"


def boot_file(node: str, kind: str) -> str:
    """The node's link to the kernel or initramfs it boots directly (``kernel``,
    ``initrd``): the argv names it here, whatever the file's path on the host."""
    return f"{DISKS}/{node}.{kind}"


def config_iso(node: str) -> str:
    """The node's startup-configuration ISO (config drive or NoCloud seed)."""
    return f"{DISKS}/{node}-config.iso"


def pidfile(node: str) -> str:
    return f"qemu/{node}.pid"


def qmp_socket(node: str) -> str:
    return f"qemu/{node}.qmp"


def nic_socket(node: str, index: int) -> str:
    """Where the node's linked NIC ``index`` listens for its host's bridge."""
    return f"qemu/{node}.nic{index}"


def console_socket(node: str) -> str:
    """The serial console, unless the lab asks for TCP consoles."""
    return f"qemu/{node}.console"


def qemu_log(node: str) -> str:
    return f"logs/{node}.log"


def console_log(node: str) -> str:
    return f"logs/{node}.console.log"
