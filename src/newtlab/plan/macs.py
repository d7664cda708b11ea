"""Deterministic NIC MAC addresses in QEMU's locally administered OUI 52:54:00.

A SONiC switch wants one system MAC on every interface (EVPN router MAC, SVI
ARP, LACP), so a ``shared`` node carries the same MAC on all its NICs. A
Linux VM with duplicate MACs blackholes traffic, so ``per-nic`` nodes get one
MAC per NIC. MACs derive from a hash of the node (and NIC) name, never from
randomness; collisions are resolved by rehashing with a counter, in sorted
order, so every plan of the same lab resolves them the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

OUI = "52:54:00"
# QEMU's own default MACs: a lab must never collide with an unconfigured NIC.
_RESERVED = frozenset({"52:54:00:12:34:56", "52:54:00:12:34:57"})


def _mac(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return f"{OUI}:{digest[0]:02x}:{digest[1]:02x}:{digest[2]:02x}"


def assign_macs(requests: Iterable[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """One distinct MAC per ``(node, nic)`` request.

    ``nic`` is -1 for a node's shared (system) MAC. Requests are processed in
    sorted order so collision resolution does not depend on input order.
    """
    taken = set(_RESERVED)
    out: dict[tuple[str, int], str] = {}
    for node, nic in sorted(set(requests)):
        base = node if nic < 0 else f"{node}/nic{nic}"
        mac, attempt = _mac(base), 0
        while mac in taken:
            attempt += 1
            mac = _mac(f"{base}#{attempt}")
        taken.add(mac)
        out[(node, nic)] = mac
    return out
