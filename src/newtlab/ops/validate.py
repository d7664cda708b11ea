"""Running the lab's declared tests (``newtlab validate``) on its nodes.

Tests run in the order written, each on its nodes at once. A node's SSH
login is opened once and kept for every test on it (a host VM's dropbear takes
five logins in progress per address, and every login reaches it from QEMU's
10.0.2.2, so at most ``LOGINS_AT_ONCE`` are opened per VM at a time). A test
with ``wait`` is tried again every ``interval`` until it holds or its time is
up; the clock and the sleep are parameters, so the retrying is tested without
waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass

import asyncssh

from ..errors import NewtlabError
from ..plan.model import CheckPlan
from ..plan.verdict import Verdict, judge
from ..runtime.hosts import Hosts
from ..state import LabState
from .events import Event, Progress
from .node import require_running

LOGINS_AT_ONCE = 4
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class CheckResult:
    """One test on one node: whether it held, after how many tries and how long, and the
    evidence (the line that matched, the query's result, or the last output line)."""

    test: str
    node: str
    kind: str
    passed: bool
    seconds: float
    attempts: int
    evidence: str
    reason: str = ""  # why it failed
    fail: str = ""  # the test's own words on what a failure means (when it ran)
    command: str = ""

    @property
    def id(self) -> str:
        return f"{self.test}[{self.node}]"

    @property
    def message(self) -> str:
        """A failure in words: the test's message first, then what was seen."""
        if self.passed:
            return ""
        said = f"{self.fail} — " if self.fail else ""
        return f"{said}{self.reason} (`{self.command}` on {self.node}: {self.evidence})"

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "message": self.message}


@dataclass(frozen=True)
class ValidationReport:
    lab: str
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def to_json(self) -> dict[str, object]:
        return {
            "lab": self.lab,
            "passed": self.passed,
            "tests": len({r.test for r in self.results}),
            "checks": len(self.results),
            "failed": len(self.failed),
            "results": [r.to_json() for r in self.results],
        }


async def until_holds(
    check: CheckPlan,
    attempt: Callable[[], Awaitable[Verdict]],
    clock: Clock,
    sleep: Sleep,
    retrying: Callable[[Verdict], None] = lambda _: None,
) -> tuple[Verdict, int]:
    """``attempt`` once, or with ``check.wait`` again every ``check.interval`` until it
    holds or no time is left for another try (``retrying`` hears each verdict that is
    tried again); the last verdict and the tries made."""
    deadline = clock() + check.wait
    tries = 0
    while True:
        tries += 1
        verdict = await attempt()
        if verdict.passed or clock() + check.interval > deadline:
            return verdict, tries
        retrying(verdict)
        await sleep(check.interval)


class Logins:
    """One kept SSH connection per node (or virtual host) for a validation run."""

    def __init__(self, state: LabState, hosts: Hosts, stack: contextlib.AsyncExitStack) -> None:
        self.state = state
        self.hosts = hosts
        self.stack = stack
        self.connections: dict[str, asyncssh.SSHClientConnection] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.gates: dict[str, asyncio.Semaphore] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, state: LabState, hosts: Hosts) -> AsyncIterator[Logins]:
        async with contextlib.AsyncExitStack() as stack:
            yield cls(state, hosts, stack)

    async def connection(self, name: str) -> asyncssh.SSHClientConnection:
        async with self.locks.setdefault(name, asyncio.Lock()):
            if name not in self.connections:
                self.connections[name] = await self._connect(name)
            return self.connections[name]

    async def _connect(self, name: str) -> asyncssh.SSHClientConnection:
        target = await require_running(self.state, self.hosts, name)
        node = target.node
        reach = self.hosts[node.host].reach(node.ssh_port, node.ssh_bind)
        address, port = await self.stack.enter_async_context(reach)
        login = target.login(address, port, self.state.ssh_key_path)
        async with self.gates.setdefault(node.name, asyncio.Semaphore(LOGINS_AT_ONCE)):
            conn = await asyncssh.connect(**login.options(15))
        self.stack.push_async_callback(_close, conn)
        return conn

    def forget(self, name: str) -> None:
        """Log in again next time (the connection broke)."""
        conn = self.connections.pop(name, None)
        if conn is not None:
            conn.close()


async def _close(conn: asyncssh.SSHClientConnection) -> None:
    conn.close()
    with contextlib.suppress(Exception):
        await conn.wait_closed()


async def attempt(check: CheckPlan, logins: Logins) -> Verdict:
    """One run of ``check`` over its node's login, judged."""
    try:
        conn = await logins.connection(check.node)
    except NewtlabError as exc:  # the node is not running: said how and what to do
        return Verdict(False, "(not run)", str(exc), ran=False)
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        why = f"no SSH login to {check.node}: {exc or type(exc).__name__}"
        return Verdict(False, "(not run)", why, ran=False)
    try:
        done = await asyncio.wait_for(conn.run(check.command, check=False), check.timeout)
    except TimeoutError:
        return Verdict(False, "(still running)", f"it did not finish within {check.timeout:g} s")
    except (OSError, asyncssh.Error) as exc:
        logins.forget(check.node)
        why = f"the SSH session to {check.node} broke: {exc!r}"
        return Verdict(False, "(not run)", why, ran=False)
    code = done.exit_status if done.exit_status is not None else 255  # ended by a signal
    return judge(check, code, str(done.stdout or ""), str(done.stderr or ""))


async def run_check(
    check: CheckPlan,
    logins: Logins,
    progress: Progress,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> CheckResult:
    progress(Event(check.id, "running", check.command))
    started = clock()

    def retrying(verdict: Verdict) -> None:
        progress(Event(check.id, "trying again", verdict.reason))

    verdict, tries = await until_holds(
        check, lambda: attempt(check, logins), clock, sleep, retrying
    )
    result = CheckResult(
        test=check.test,
        node=check.node,
        kind=check.kind,
        passed=verdict.passed,
        seconds=round(clock() - started, 2),
        attempts=tries,
        evidence=verdict.evidence,
        reason=verdict.reason,
        fail=check.fail if verdict.ran and not verdict.passed else "",  # it ran and did not hold
        command=check.command,
    )
    progress(Event(check.id, "passed" if result.passed else "failed", result.evidence,
                   failed=not result.passed))  # fmt: skip
    return result


async def validate(
    state: LabState, hosts: Hosts, checks: Sequence[CheckPlan], progress: Progress
) -> list[CheckResult]:
    """Each test in order, on its nodes at once; every result, failures included."""
    results: list[CheckResult] = []
    async with Logins.open(state, hosts) as logins:
        for test in dict.fromkeys(c.test for c in checks):
            group = [c for c in checks if c.test == test]
            results += await asyncio.gather(*(run_check(c, logins, progress) for c in group))
    return results
