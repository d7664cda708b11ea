"""The reference relay for bench/newtlink.py: ``os.splice`` both ways, no framing at all.

Usage: python bench/splice_relay.py A_PORT Z_PORT — dials both loopback ports (the
endpoints listen, as QEMU NICs do) and moves bytes kernel-side through a pipe per
direction until either side closes. What a relay costs when it never looks at a frame.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import threading

CHUNK = 1 << 20
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named only from Python 3.10 on some builds


def pump(src: socket.socket, dst: socket.socket) -> None:
    read, write = os.pipe()
    fcntl.fcntl(write, F_SETPIPE_SZ, CHUNK)  # a 64 KiB pipe would cap each splice
    try:
        while True:
            n = os.splice(src.fileno(), write, CHUNK)
            if not n:
                return
            while n:
                n -= os.splice(read, dst.fileno(), n)
    except OSError:
        return
    finally:
        os.close(read)
        os.close(write)


def main() -> None:
    a, z = (socket.create_connection(("127.0.0.1", int(p))) for p in sys.argv[1:3])
    for sock in (a, z):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threads = [threading.Thread(target=pump, args=pair, daemon=True) for pair in ((a, z), (z, a))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
