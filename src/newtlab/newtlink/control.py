"""The control socket: change a running bridge's links, or watch one.

A client connects to the bridge's ``control_unix`` socket and sends one JSON
line; the bridge answers one JSON line (``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``). Requests:

* ``{"op": "show"}`` → ``{"links": {NAME: SETTINGS}}`` for every link with any;
* ``{"op": "set", "link": END, "settings": SETTINGS}`` makes a link's settings
  exactly these (``{}``: none). ``END`` is either end's name (``r1:eth1``);
  SETTINGS is ``{"down": true, "a": IMPAIRMENT, "z": IMPAIRMENT}``, any part
  left out, an impairment applying to the frames read from that side (see
  ``impair``);
* ``{"op": "capture", "link": END, "count": N, "duration": S}`` → after the
  answer line, a pcap stream of the frames crossing the link both ways until
  N frames, S seconds, the client closing, or the bridge stopping.

A bridge starts with the settings its config gives each link. Settings set
later are written to the bridge's ``settings_file`` at once, and a bridge that
finds that file takes it instead, so a bridge its supervisor (or ``newtlab
repair``) restarts keeps them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from .pcap import HEADER_BYTES, PcapTap

if TYPE_CHECKING:
    from .link import Link

MAX_REQUEST = 64 << 10


class ControlError(Exception):
    """A request the bridge cannot do; the message is for the user."""


def find_link(links: list[Link], end: str) -> Link:
    for link in links:
        if end in (link.config.a.name, link.config.z.name, link.name):
            return link
    raise ControlError(f"no link with an end named {end!r}")


def load_settings(path: str, links: list[Link]) -> None:
    """Each link's settings: the config's, unless a bridge of this lab kept some in
    ``path`` since (then those, for every link: a link it does not name has none)."""
    kept = None
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                kept = json.load(handle)
        except FileNotFoundError:
            pass
    for link in links:
        link.apply(kept.get(link.name, {}) if kept is not None else link.config.settings)


def save_settings(path: str, links: list[Link]) -> None:
    data = {link.name: link.settings() for link in links if link.settings()}
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    os.replace(temporary, path)


def _read_request(conn: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ControlError("request too long")
    try:
        request = json.loads(data)
    except ValueError:
        raise ControlError("a request is one line of JSON") from None
    if not isinstance(request, dict):
        raise ControlError("a request is a JSON object")
    return request


def _reply(conn: socket.socket, answer: dict[str, Any]) -> None:
    conn.sendall(json.dumps(answer).encode() + b"\n")


def serve(conn: socket.socket, links: list[Link], settings_file: str) -> None:
    """Answer one control connection (in a thread of its own)."""
    with conn:
        conn.setblocking(True)
        conn.settimeout(10)
        try:
            request = _read_request(conn)
            op = request.get("op")
            if op == "show":
                _reply(conn, {"ok": True, "links": {
                    link.name: link.settings() for link in links if link.settings()}})  # fmt: skip
            elif op == "set":
                link = find_link(links, str(request.get("link", "")))
                try:
                    link.apply(dict(request.get("settings") or {}))
                except (TypeError, ValueError) as exc:
                    raise ControlError(f"bad settings: {exc}") from None
                if settings_file:
                    save_settings(settings_file, links)
                _reply(conn, {"ok": True, "link": link.name, "settings": link.settings()})
            elif op == "capture":
                link = find_link(links, str(request.get("link", "")))
                _reply(conn, {"ok": True, "link": link.name})
                _capture(conn, link, int(request.get("count") or 0),
                         float(request.get("duration") or 0))  # fmt: skip
            else:
                raise ControlError(f"unknown op {op!r} (show, set, capture)")
        except ControlError as exc:
            with contextlib.suppress(OSError):
                _reply(conn, {"ok": False, "error": str(exc)})
        except OSError:
            pass  # the client went away


def _capture(conn: socket.socket, link: Link, count: int, duration: float) -> None:
    """Stream the link's frames to ``conn`` as pcap until one of the ends is reached."""
    tap = PcapTap(count)
    deadline = time.monotonic() + duration if duration else float("inf")
    conn.sendall(HEADER_BYTES)
    link.add_tap(tap)
    try:
        conn.settimeout(None)
        while time.monotonic() < deadline:
            chunk = tap.take(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
            if chunk is None:
                break
            if chunk:
                conn.sendall(chunk)
            elif _closed_by_peer(conn):
                break
    finally:
        link.remove_tap(tap)
        tap.close()


def _closed_by_peer(conn: socket.socket) -> bool:
    """The client hung up (it sends nothing after its request)."""
    try:
        conn.setblocking(False)
        return conn.recv(1) == b""
    except BlockingIOError:
        return False
    finally:
        conn.setblocking(True)
