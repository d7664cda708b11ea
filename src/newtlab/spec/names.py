"""Names that end up in paths, process names and shell commands.

Device, lab and server names are restricted to a safe alphabet before they
reach the filesystem or a command line; interface names are freer (vendor
names contain '/') but may never contain the ':' that separates
``device:interface`` or characters that break a JSON or shell word.
"""

from __future__ import annotations

import ipaddress
import re

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_IFACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]*")
SAFE_NAME_HINT = "use letters, digits, '_', '.' and '-' only, starting with a letter or digit"
_HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
HOST_ADDRESS_HINT = "give an IP address or a DNS name (letters, digits, '-' and '.')"


def is_safe_name(name: str) -> bool:
    return SAFE_NAME.fullmatch(name) is not None and len(name) <= 64


def is_interface_name(name: str) -> bool:
    return _IFACE_NAME.fullmatch(name) is not None and len(name) <= 64


def split_endpoint(text: str) -> tuple[str, str] | None:
    """``"spine1:Ethernet0"`` → ``("spine1", "Ethernet0")``; None if malformed."""
    device, sep, iface = text.partition(":")
    if not sep or not device or not iface:
        return None
    return device, iface


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_host_address(text: str) -> bool:
    """An IP address, or a host name a resolver takes (RFC 1123 labels, '_' tolerated)."""
    if is_ip_address(text):
        return True
    labels = text.removesuffix(".").split(".")
    return len(text) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)
