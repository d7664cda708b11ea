"""The programs a lab runs on each host, and the Debian packages that hold them."""

QEMU_BINARY = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
PACKAGES = {QEMU_BINARY: "qemu-system-x86", QEMU_IMG: "qemu-utils"}
