"""``newtlab console``: a raw terminal attached to a VM's serial console (its Unix
socket, or a TCP port for a lab with TCP consoles).

Ctrl-] leaves (as in telnet). No telnet or socat needed. Without a terminal
(stdin a file, a pipe or /dev/null) what stdin holds is typed into the
console, and the console's output is shown until it has been quiet for a
moment after stdin ended.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import sys
import termios
import tty

ESCAPE = b"\x1d"  # Ctrl-]
QUIET_AFTER_INPUT = 1.0  # s of console silence that ends a session whose stdin ended


def attach(address: str | tuple[str, int]) -> None:
    """Relay stdin/stdout to the console until Ctrl-], the end of stdin (then quiet), or
    the VM closing it."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
    else:
        sock = socket.create_connection(address, timeout=5)
    sock.setblocking(False)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    interactive = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if interactive else None
    try:
        if interactive:
            tty.setraw(stdin)
        sock.sendall(b"\r")
        # select, not epoll: epoll refuses a regular file (stdin redirected from one)
        with selectors.SelectSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            sel.register(stdin, selectors.EVENT_READ)
            reading_stdin = True
            while True:
                ready = sel.select(None if reading_stdin else QUIET_AFTER_INPUT)
                if not ready:
                    return  # stdin ended and the console has gone quiet
                for key, _ in ready:
                    if key.fileobj is sock:
                        data = sock.recv(65536)
                        if not data:
                            return
                        os.write(stdout, data)
                        continue
                    data = os.read(stdin, 1024)
                    if ESCAPE in data:
                        _send(sock, data.split(ESCAPE)[0])
                        return
                    if not data:
                        if interactive:
                            return
                        sel.unregister(stdin)
                        reading_stdin = False
                        continue
                    _send(sock, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        with contextlib.suppress(OSError):
            sock.close()


def _send(sock: socket.socket, data: bytes) -> None:
    sock.setblocking(True)
    sock.sendall(data)
    sock.setblocking(False)
