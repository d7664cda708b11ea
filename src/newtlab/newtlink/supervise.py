"""``newtlink --supervise``: keep the bridge running, restarting it whenever it dies.

The supervisor is a small parent that starts the bridge as its child, prints
``READY <own pid>`` once the child is ready, and from then on restarts the
child within a second each time it dies (a crash, the OOM killer, a
``kill -9``), with backoff if it keeps dying at once. It exits only on
SIGTERM or SIGINT, after stopping the child. Each new child is told how often
it has been restarted, and its stats say so (with when it came back).

VMs listen and the bridge dials them, so a restarted bridge simply connects
again: no VM notices more than a short loss of frames.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time

from . import launch
from .pump import log
from .server import EXIT_FAILED, EXIT_OK

READY_TIMEOUT = 15.0
FIRST_DELAY = 0.1  # before restarting a child that ran for a while
MAX_DELAY = 5.0  # ceiling of the backoff for a child that keeps dying at once
STABLE = 5.0  # a child that lived this long resets the backoff
STOP_TIMEOUT = 5.0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    def __init__(self, config: str, lab: str) -> None:
        self.config = config
        self.lab = lab
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True
        child = self.child
        if child is not None and child.returncode is None:
            child.send_signal(signal.SIGTERM)

    def _spawn(self, restarts: int) -> bool:
        """Start a child and wait for its READY line; False if it died first."""
        self.child = child = subprocess.Popen(
            launch.command(self.config, "--lab", self.lab, "--restarts", str(restarts)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=launch.environment(),  # the child runs this very code
        )
        assert child.stdout is not None
        with child.stdout:  # the child prints nothing on stdout after READY
            readable, _, _ = select.select([child.stdout], [], [], READY_TIMEOUT)
            line = child.stdout.readline() if readable else None
        if line is not None and line.startswith(b"READY"):
            return True
        if line is None:  # silent: hung at start
            log(f"bridge pid {child.pid} not ready within {READY_TIMEOUT:.0f} s; stopping it")
            child.kill()
        child.wait()  # after EOF on its stdout: it is exiting, its reason already on stderr
        return False

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, deadline - time.monotonic()))

    def _stop_child(self) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # outlive the SSH session that started us
        try:
            if not self._spawn(0):
                assert self.child is not None
                return self.child.returncode or EXIT_FAILED  # its reason is already on stderr
            assert self.child is not None
            print(f"READY {os.getpid()}", flush=True)
            log(f"supervising bridge pid {self.child.pid}")
            return self._keep_running()
        finally:
            self._stop_child()

    def _keep_running(self) -> int:
        restarts = quick = 0  # quick: deaths in a row of children that lived < STABLE
        while True:
            assert self.child is not None
            started = time.monotonic()
            _, status = os.waitpid(self.child.pid, 0)
            self.child.returncode = os.waitstatus_to_exitcode(status)
            if self.stopping:
                return EXIT_OK
            quick = quick + 1 if time.monotonic() - started < STABLE else 0
            delay = _backoff(quick)
            log(f"bridge pid {self.child.pid} {_describe(status)}; restarting in {delay:.1f} s")
            while True:
                self._sleep(delay)
                if self.stopping:
                    return EXIT_OK
                restarts += 1
                if self._spawn(restarts):
                    log(f"bridge back as pid {self.child.pid} (restart {restarts})")
                    break
                quick += 1
                delay = _backoff(quick)


def _backoff(quick_deaths: int) -> float:
    """0.1 s after a child that ran for a while, doubling while children keep dying at once."""
    return min(FIRST_DELAY * 2.0 ** max(quick_deaths - 1, 0), MAX_DELAY)


def supervise(config: str, lab: str) -> int:
    """Run the bridge for ``config`` under a supervisor until SIGTERM; the exit status."""
    return Supervisor(config, lab).run()
