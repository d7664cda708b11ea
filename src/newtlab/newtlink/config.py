"""The bridge config (JSON): which links to relay, and how each side is reached.

Each side of a link either listens (``a_port`` with ``a_bind`` and the
``a_allow`` list of peer addresses) or dials (``a_dial: "host:port"``,
optionally from ``a_source``, or ``a_dial: "unix:PATH"``, a Unix socket path
relative to the bridge's working directory), and the bridge redials a
dialling side whenever it drops. newtlab's own configs dial the VMs, which
listen on Unix sockets in the lab directory; a listening side serves the far
end of a link between two servers, or any client when newtlink runs on its own.

Every error names the JSON path, so a bad file is explained in one line.
Unknown fields are ignored, so a newer orchestrator can add some.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

SIDES = ("a", "z")
DEFAULT_BIND = "127.0.0.1"


class ConfigError(Exception):
    """The config file is missing or malformed; the message says where."""


@dataclass(frozen=True)
class SideConfig:
    name: str  # the VM interface on this side, e.g. "spine1:Ethernet0"
    port: int  # the port listened on, or dialled
    bind: str = DEFAULT_BIND  # listening sides: the address listened on
    allow: frozenset[str] = frozenset()  # listening sides: peers allowed to connect; empty = any
    dial: str = ""  # dialling sides: the host to connect to ("" = this side listens)
    source: str = ""  # dialling sides: the local address to dial from ("" = the kernel's choice)
    unix: str = ""  # dialling sides: the Unix socket to connect to, instead of a host

    @property
    def dials(self) -> bool:
        return bool(self.dial or self.unix)

    @property
    def dial_address(self) -> str:
        """``host:port`` or ``unix:PATH`` dialled, or "" for a listening side."""
        if self.unix:
            return f"unix:{self.unix}"
        return _join(self.dial, self.port) if self.dial else ""

    @property
    def where(self) -> str:
        """``dial H:P`` (or ``dial unix:PATH``) or ``listen B:P``, for messages."""
        if self.dials:
            return f"dial {self.dial_address}"
        return f"listen {_join(self.bind, self.port)}"


@dataclass(frozen=True)
class LinkConfig:
    a: SideConfig
    z: SideConfig
    pcap: str = ""  # capture file, "" = no capture
    # impairment and cable state at start (see ``control``); a settings file overrides it
    settings: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def name(self) -> str:
        """How the link is named in the ``pcap`` map and in messages."""
        return f"{self.a.name}--{self.z.name}"

    def side(self, side: str) -> SideConfig:
        return self.a if side == "a" else self.z


@dataclass(frozen=True)
class BridgeConfig:
    lab: str
    links: tuple[LinkConfig, ...]
    stats_addr: tuple[str, int] | None = None
    stats_unix: str = ""
    control_unix: str = ""  # the control socket (see ``control``), "" = none
    settings_file: str = ""  # link settings kept across restarts (see ``control``)


def normalize_address(address: str) -> str:
    """One spelling per address, so allow lists compare (IPv4-mapped IPv6 → IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_host_port(text: str, where: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; an empty host means every address."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: expected host:port, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _get(entry: dict[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    if key not in entry or entry[key] is None:
        if default is None:
            raise ConfigError(f"{where}: missing {key!r}")
        return default
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _side(entry: dict[str, Any], side: str, where: str) -> SideConfig:
    name = _get(entry, side, str, where)
    if not name:
        raise ConfigError(f"{where}.{side}: empty name")
    dial = _get(entry, f"{side}_dial", str, where, "")
    if dial:
        if entry.get(f"{side}_port") is not None:
            raise ConfigError(
                f"{where}: {side}_dial and {side}_port both given; a side dials or listens"
            )
        if dial.startswith("unix:"):
            path = dial.removeprefix("unix:")
            if not path or "\0" in path or len(path.encode()) > 100:
                raise ConfigError(f"{where}.{side}_dial: {dial!r} is not a Unix socket path")
            return SideConfig(name, 0, unix=path)
        if not dial.rpartition(":")[0].strip("[]"):
            raise ConfigError(f"{where}.{side}_dial: {dial!r} names no host")
        host, port = parse_host_port(dial, f"{where}.{side}_dial")
        source = _get(entry, f"{side}_source", str, where, "")
        if source:
            try:
                source = normalize_address(source)
            except ValueError:
                raise ConfigError(
                    f"{where}.{side}_source: {source!r} is not an IP address"
                ) from None
        return SideConfig(name, port, dial=host, source=source)
    port = _get(entry, f"{side}_port", int, where)
    if not 0 < port < 65536:
        raise ConfigError(f"{where}.{side}_port: {port} is not a TCP port")
    bind = _get(entry, f"{side}_bind", str, where, DEFAULT_BIND) or DEFAULT_BIND
    allow_raw = _get(entry, f"{side}_allow", list, where, [])
    allow = set()
    for i, address in enumerate(allow_raw):
        try:
            allow.add(normalize_address(address))
        except (TypeError, ValueError, AttributeError):
            raise ConfigError(
                f"{where}.{side}_allow[{i}]: {address!r} is not an IP address"
            ) from None
    return SideConfig(name, port, bind, frozenset(allow))


def parse(data: Any) -> BridgeConfig:
    if not isinstance(data, dict):
        raise ConfigError("expected a JSON object at the top level")
    lab = _get(data, "lab", str, "config", "")
    links_raw = _get(data, "links", list, "config")
    pcap = _get(data, "pcap", dict, "config", {})
    links: list[LinkConfig] = []
    for i, entry in enumerate(links_raw):
        where = f"links[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected an object")
        settings = _get(entry, "settings", dict, where, {})
        links.append(LinkConfig(_side(entry, "a", where), _side(entry, "z", where), "", settings))
    names = {link.name: i for i, link in enumerate(links)}
    for name, path in pcap.items():
        if name not in names:
            raise ConfigError(f"pcap: no link named {name!r} (links are named 'a--z')")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"pcap[{name!r}]: expected a file path")
        old = links[names[name]]
        links[names[name]] = LinkConfig(old.a, old.z, path, old.settings)
    stats_addr_raw = _get(data, "stats_addr", str, "config", "")
    stats_addr = parse_host_port(stats_addr_raw, "stats_addr") if stats_addr_raw else None
    stats_unix = _get(data, "stats_unix", str, "config", "")
    control_unix = _get(data, "control_unix", str, "config", "")
    settings_file = _get(data, "settings_file", str, "config", "")
    return BridgeConfig(lab, tuple(links), stats_addr, stats_unix, control_unix, settings_file)


def load(path: str) -> BridgeConfig:
    """The config in ``path``; ConfigError (one line, naming the file) if unusable."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # JSONDecodeError and bad UTF-8
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    try:
        return parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
