"""A second user of a machine, for the tests that check a lab is its owner's alone.

``probe_argv`` runs, as root, a probe that listens on a control socket in a
directory anyone may enter, then has the other user connect to it and to
each socket given: the control must connect, so a refusal of the others is
the file system's doing, not the probe's.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
from collections.abc import Iterator, Sequence

# One per pytest-xdist worker: two at once must not delete the user the other one uses.
OTHER = "newtlab-other" + os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
PYTHON = "/usr/bin/python3"  # the system's: the other user may not enter a venv's directory

_CONNECT = """
import socket, sys
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        print(path, "connected")
    except OSError as exc:
        print(path, type(exc).__name__)
"""

_PROBE = """
import os, socket, subprocess, sys, tempfile
uid, gid, connect, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
control = os.path.join(tempfile.mkdtemp(), "control")
os.chmod(os.path.dirname(control), 0o755)
with socket.socket(socket.AF_UNIX) as listener:
    listener.bind(control)
    os.chmod(control, 0o777)
    listener.listen()
    argv = ["setpriv", "--reuid=" + uid, "--regid=" + gid, "--clear-groups",
            sys.executable, "-c", connect, control, *paths]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
print("control", done.stdout.splitlines()[0].rsplit(" ", 1)[1] if done.stdout else done.stderr)
print(*done.stdout.splitlines()[1:], sep="\\n")
"""


@contextlib.contextmanager
def other_user() -> Iterator[pwd.struct_passwd]:
    """A system user of this machine (servers in namespaces share its user database)."""
    made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                           "/usr/sbin/nologin", OTHER], capture_output=True, text=True)  # fmt: skip
    assert made.returncode in (0, 9), made.stderr  # 9: it exists (a run that was killed)
    try:
        yield pwd.getpwnam(OTHER)
    finally:
        subprocess.run(["userdel", OTHER], capture_output=True)


def probe_argv(user: pwd.struct_passwd, paths: Sequence[str]) -> list[str]:
    return [PYTHON, "-c", _PROBE, str(user.pw_uid), str(user.pw_gid), _CONNECT, *paths]


def reached(stdout: str) -> dict[str, str]:
    """The probe's answer: path (or "control") → "connected" or the error's name."""
    return dict(line.rsplit(" ", 1) for line in stdout.splitlines() if line.strip())
