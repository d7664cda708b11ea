"""The bridge config (JSON): which links to relay, where to listen, who may connect."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class ConfigError(Exception):
    """The config file is missing or malformed; the message says where."""


@dataclass(frozen=True)
class Side:
    port: int
    bind: str
    allow: tuple[str, ...]  # peer addresses; empty = any


@dataclass(frozen=True)
class LinkConfig:
    a: str
    z: str
    a_side: Side
    z_side: Side
    pcap: str = ""


@dataclass(frozen=True)
class BridgeConfig:
    lab: str
    links: list[LinkConfig]
    stats_addr: str = ""
    stats_unix: str = ""
    pcap: dict[str, str] = field(default_factory=dict)


def _field(entry: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in entry:
        raise ConfigError(f"{where}: missing {key!r}")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _side(entry: dict[str, Any], prefix: str, where: str) -> Side:
    port = _field(entry, f"{prefix}_port", int, where)
    if not 0 < port < 65536:
        raise ConfigError(f"{where}.{prefix}_port: {port} is not a TCP port")
    allow = entry.get(f"{prefix}_allow") or []
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise ConfigError(f"{where}.{prefix}_allow: expected a list of addresses")
    return Side(port, entry.get(f"{prefix}_bind") or "127.0.0.1", tuple(allow))


def parse(data: Any) -> BridgeConfig:
    if not isinstance(data, dict):
        raise ConfigError("top level: expected a JSON object")
    links_raw = data.get("links")
    if not isinstance(links_raw, list):
        raise ConfigError("links: expected a list")
    pcap = data.get("pcap") or {}
    if not isinstance(pcap, dict):
        raise ConfigError("pcap: expected an object of link name → file")
    links = []
    for i, entry in enumerate(links_raw):
        where = f"links[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected an object")
        a = _field(entry, "a", str, where)
        z = _field(entry, "z", str, where)
        links.append(
            LinkConfig(
                a,
                z,
                _side(entry, "a", where),
                _side(entry, "z", where),
                str(pcap.get(f"{a}--{z}", "")),
            )
        )
    return BridgeConfig(
        str(data.get("lab", "")),
        links,
        str(data.get("stats_addr") or ""),
        str(data.get("stats_unix") or ""),
        pcap,
    )


def load(path: str) -> BridgeConfig:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
