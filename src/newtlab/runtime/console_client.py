"""``newtlab console``: a raw terminal attached to a VM's serial console over TCP.

Ctrl-] leaves (as in telnet). No telnet or socat needed.
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


def attach(host: str, port: int) -> None:
    """Relay stdin/stdout to the console until Ctrl-], EOF or the VM closes it."""
    sock = socket.create_connection((host, port), timeout=5)
    sock.setblocking(False)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    interactive = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if interactive else None
    try:
        if interactive:
            tty.setraw(stdin)
        sock.sendall(b"\r")
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            sel.register(stdin, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is sock:
                        data = sock.recv(65536)
                        if not data:
                            return
                        os.write(stdout, data)
                    else:
                        data = os.read(stdin, 1024)
                        if not data or ESCAPE in data:
                            if data:
                                sock.sendall(data.split(ESCAPE)[0])
                            return
                        sock.setblocking(True)
                        sock.sendall(data)
                        sock.setblocking(False)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        with contextlib.suppress(OSError):
            sock.close()
