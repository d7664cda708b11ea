"""Human-readable renderings: plan and status tables, live deploy progress."""

from __future__ import annotations

import shlex
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from rich.console import Console
from rich.live import Live
from rich.table import Table

from .plan.bridges import trunk_port
from .plan.impairments import describe
from .plan.ports import collect_ports
from .plan.verdict import wanted

if TYPE_CHECKING:  # only named here: `platforms` and `link` need none of the runtime
    from .ops.doctor import Check
    from .ops.events import Event
    from .ops.prune import Pruned
    from .ops.status import BridgeStatus, LabStatus, NodeStatus, VhostStatus
    from .ops.validate import ValidationReport
    from .plan.model import CheckPlan, LinkSettings, PatchPlan, Plan, StartupConfigPlan

# A word too long for its column is folded onto the next line, never cut to an
# ellipsis: "10.0.1.1…" reads as another address.
FOLD: Final = "fold"

_STATUS_STYLE = {
    "running": "green",
    "ready": "green",
    "error": "red",
    "exited": "red",
    "stopped": "yellow",
    "unknown": "yellow",
}


AUTO_ACCEL = "KVM if it works here (proven at deploy), else TCG"


def plan_tables(plan: Plan, auto: bool = False) -> list[Table]:
    """The plan as tables; ``auto``: the accelerator is deploy's to prove, not the plan's."""
    accel = AUTO_ACCEL if auto else plan.accel
    nodes = Table(title=f"Lab {plan.lab} — {len(plan.nodes)} VMs ({accel})", title_justify="left")
    for column in ("NODE", "TYPE", "PLATFORM", "HOST", "SSH", "CONSOLE", "MEM", "CPU", "NICS"):
        nodes.add_column(column, overflow=FOLD)
    engines = {node.engine for node in plan.nodes} != {"qemu"}  # the default is not shown
    for node in plan.nodes:
        name = node.name + (f" ({', '.join(node.hosts)})" if node.hosts else "")
        nodes.add_row(
            name,
            node.device_type,
            node.platform,
            f"{node.host} ({node.engine})" if engines else node.host,
            str(node.ssh_port),
            _socket(node.console_endpoint),
            str(node.memory),
            str(node.cpus),
            str(len(node.nics)),
        )
    nics = Table(
        title="NICs, in QEMU's order (first: management; sockets in the lab's qemu/)",
        title_justify="left",
    )
    for column in ("NODE", "GUEST", "INTERFACE"):
        nics.add_column(column, overflow=FOLD)
    nics.add_column("MAC", min_width=17)  # whole: a MAC folded reads as two
    nics.add_column("PCI", min_width=7)
    nics.add_column("PEER", overflow=FOLD)
    nics.add_column("SOCKET", overflow=FOLD)  # in the lab directory; the bridge dials it
    peers = {end: far for link in plan.links for end, far in ((link.a, link.z), (link.z, link.a))}
    for node in plan.nodes:
        for nic in node.nics:
            end = f"{nic.device}:{nic.interface}"
            shown = "-" if not nic.interface else nic.interface if nic.device == node.name else end
            nics.add_row(node.name, nic.guest, shown, nic.mac, nic.pci.removeprefix("0000:"),
                         peers.get(end, "-"), _socket(nic.listen or "-"))  # fmt: skip
    links = Table(title=f"{len(plan.links)} links", title_justify="left")
    for column in ("A", "Z", "HOSTS", "TRUNK PORT"):
        links.add_column(column, overflow=FOLD)
    for link in plan.links:
        if link.a_host == link.z_host:  # both NICs dialled by one bridge: no port
            links.add_row(link.a, link.z, link.a_host, "-")
        else:  # the bridges meet on a port of the worker host
            trunk = f"{link.worker_host}:{trunk_port(link)}"
            links.add_row(link.a, link.z, f"{link.a_host} ↔ {link.z_host}", trunk)
    tables = [nodes, nics, links] if plan.links else [nodes, nics]
    vhosts = [vhost for node in plan.nodes for vhost in node.vhosts]
    if vhosts:
        table = Table(title=f"{len(vhosts)} virtual hosts", title_justify="left")
        for column in ("HOST", "VM", "INTERFACES", "GATEWAY"):
            table.add_column(column, overflow=FOLD)
        for vhost in vhosts:
            ifaces = ", ".join(f"{i.name} {i.address or '(no address)'}" for i in vhost.interfaces)
            table.add_row(vhost.name, vhost.vm, ifaces or "lo only", vhost.gateway or "none")
        tables.append(table)
    after_boot = [n for n in plan.nodes if n.patches or n.post_boot]
    if after_boot:
        table = Table(title="After boot (in this order, on every start)", title_justify="left")
        for column in ("NODE", "BOOT PATCHES", "POST-BOOT COMMANDS"):
            table.add_column(column, overflow=FOLD)
        for node in after_boot:
            patches = "\n".join(f"{p.name} ({p.source})" for p in node.patches) or "none"
            table.add_row(node.name, patches, "\n".join(node.post_boot) or "none")
        tables.append(table)
    # Nodes with a configs/ file (a NoCloud platform's seed without one only names the VM).
    configs = [n for n in plan.nodes if n.startup_config and n.startup_config.source]
    if configs:
        table = Table(title="Startup configurations (rendered below)", title_justify="left")
        for column in ("NODE", "DELIVERED", "FROM"):
            table.add_column(column, overflow=FOLD)
        for node in configs:
            config = node.startup_config
            assert config is not None
            table.add_row(node.name, _delivery(config), config.source)
        tables.append(table)
    if plan.checks:
        tables.append(checks_plan_table(plan))
    return tables


class _Live:
    """A view that draws live while its ``with`` lasts (when ``live`` is set: a terminal)."""

    live: Live | None

    def __enter__(self) -> Self:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live is not None:
            self.live.__exit__(kind, exc, tb)


def checks_plan_table(plan: Plan) -> Table:
    """The declared tests each node runs (``newtlab validate``), in the order they run."""
    table = Table(title=f"Tests (`newtlab validate`): {len(plan.checks)} on their nodes, in "
                  "this order", title_justify="left")  # fmt: skip
    for column in ("TEST", "NODE", "RUNS", "MUST HOLD"):
        table.add_column(column, overflow=FOLD)
    for check in plan.checks:
        table.add_row(check.test, check.node, check.command, wanted(check))
    return table


def validation_table(report: ValidationReport) -> Table:
    """``newtlab validate``'s final table: each test on each node, and the evidence."""
    failed = len(report.failed)
    verdict = "[green]all passed[/]" if not failed else f"[red]{failed} failed[/]"
    count = len(report.results)
    checks = "1 check" if count == 1 else f"{count} checks"
    table = Table(title=f"Lab {report.lab}: {checks}, {verdict}",
                  title_justify="left")  # fmt: skip
    for column in ("TEST", "NODE", "RESULT", "TIME", "EVIDENCE"):
        table.add_column(column, overflow=FOLD)
    for r in report.results:
        result = "[green]pass[/]" if r.passed else "[red]FAIL[/]"
        tries = f" ({r.attempts} tries)" if r.attempts > 1 else ""
        evidence = r.evidence if r.passed else f"{r.message}"
        table.add_row(r.test, r.node, result, f"{r.seconds:.1f}s{tries}", evidence)
    return table


class ValidateView(_Live):
    """A live line per test while ``newtlab validate`` runs (its nodes and how each is
    doing), printed for good when the test is done; plain lines when not on a terminal."""

    def __init__(self, console: Console, checks: list[CheckPlan]) -> None:
        self.console = console
        self.where = {check.id: (check.test, check.node) for check in checks}
        self.tests: dict[str, dict[str, str]] = {}  # test → node → how it is doing
        for check in checks:
            self.tests.setdefault(check.test, {})[check.node] = "waiting"
        self.live = Live("", console=console, refresh_per_second=8, transient=True) \
            if console.is_terminal else None  # fmt: skip

    def _line(self, test: str) -> str:
        marks = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "trying again": "[yellow]…[/]"}
        shown = " ".join(f"{marks.get(s, '·')} {n}" for n, s in self.tests[test].items())
        return f"{test}: {shown}"

    def __call__(self, event: Event) -> None:
        if event.node not in self.where:
            return
        test, node = self.where[event.node]
        nodes = self.tests[test]
        nodes[node] = event.phase
        done = all(s in ("passed", "failed") for s in nodes.values())
        if done:
            failed = sum(s == "failed" for s in nodes.values())
            verdict = f"[red]{failed} failed[/]" if failed else "[green]passed[/]"
            if self.live is not None:
                self.live.update("")
            self.console.print(f"{self._line(test)} — {verdict}", highlight=False)
        elif self.live is not None:
            self.live.update(self._line(test))
        elif event.phase == "trying again":
            self.console.print(f"{event.node}: trying again ({event.detail})", highlight=False,
                               markup=False)  # fmt: skip


def _delivery(config: StartupConfigPlan) -> str:
    if config.method == "iso":
        return f"ISO {config.label!r} ({config.drive}) as {next(iter(config.files))}"
    if config.method == "nocloud":
        return f"NoCloud seed ({config.drive}) as user-data"
    return "typed on the console (on deploy)"


def print_plan(console: Console, plan: Plan, *, auto: bool = False, argv: bool = False) -> None:
    """The plan's tables, each startup configuration as rendered, the bridges and what
    listens beyond loopback; ``argv``: each VM's exact QEMU command line too."""
    for table in plan_tables(plan, auto):
        console.print(table)
    for node in plan.nodes if argv else []:  # one line each: to copy, not to read
        console.print(f"── {node.name}: QEMU command line ──", markup=False, highlight=False)
        console.print(shlex.join(node.qemu_argv), markup=False, highlight=False, soft_wrap=True)
    for source, (patch, nodes) in _patches(plan).items():
        console.print(
            f"── boot patch {source} ({', '.join(nodes)}) ──", markup=False, highlight=False
        )
        only = (
            f" Runs on SONiC {', '.join(patch.sonic_releases)} only."
            if patch.sonic_releases
            else ""
        )
        console.print(
            (patch.description or "(no description)") + only, markup=False, highlight=False
        )
    for node in plan.nodes:
        config = node.startup_config
        if config is not None and config.source:  # verbatim: a configuration is not reflowed
            console.print(f"── {node.name}: {config.source} ──", markup=False, highlight=False)
            console.print(config.content.rstrip(), markup=False, highlight=False, soft_wrap=True)
    for bridge in plan.bridges.values():
        listens = [side.listen for link in bridge.links for side in (link.a, link.z) if side.listen]
        far = f", listens for the far bridge on {', '.join(listens)}" if listens else ""
        console.print(
            f"bridge on {bridge.host}: {len(bridge.links)} links, dials its VMs' NICs on "
            f"their Unix sockets{far}"
        )
    exposed = [u for u in collect_ports(plan) if u.bind != "127.0.0.1"]
    if not exposed:
        console.print("nothing listens beyond 127.0.0.1")
        return
    table = Table(title="Listening beyond loopback", title_justify="left")
    for column in ("HOST", "ADDRESS", "PORT", "PURPOSE"):
        table.add_column(column, overflow=FOLD)
    for use in exposed:
        table.add_row(use.host, use.bind, str(use.port), use.purpose)
    console.print(table)


def _patches(plan: Plan) -> dict[str, tuple[PatchPlan, list[str]]]:
    """Each boot patch once, by its descriptor, with the nodes it applies to."""
    found: dict[str, tuple[PatchPlan, list[str]]] = {}
    for node in plan.nodes:
        for patch in node.patches:
            found.setdefault(patch.source, (patch, []))[1].append(node.name)
    return found


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def print_status(console: Console, status: LabStatus) -> None:
    accels = status.accels
    accel = (
        ", ".join(f"{a} on {h}" for h, a in accels.items())
        if len(set(accels.values())) > 1
        else status.accel
    )
    console.print(f"Lab [bold]{status.lab}[/] (deployed {status.created[:19]}, accel {accel})")
    if status.accel_note:
        console.print(f"  {status.accel_note}", style="dim")
    pool = len({n.host for n in status.nodes}) > 1  # then each node's server is a column
    nodes = Table(title_justify="left")
    for column in ("NODE", *(["SERVER"] if pool else []), "STATUS", "SSH", "CONSOLE", "PID",
                   "BOOT", "NOTE"):  # fmt: skip
        nodes.add_column(column, overflow=FOLD)
    for node in status.nodes:
        note = (node.error.splitlines() or [""])[0] or ", ".join(node.hosts)
        if node.status == "starting" and node.phase:
            note = node.phase  # e.g. the readiness probe it waits on
        boot = f"{node.boot_seconds:.1f}s" if node.boot_seconds else ""
        nodes.add_row(*_process_row(node.name, node, boot, note, pool))
    for vhost in status.vhosts:
        nodes.add_row(*_process_row(vhost.id, vhost, "", _vhost_note(vhost), pool))
    console.print(nodes)
    if status.links:
        links = Table(title_justify="left")
        for column in ("LINK", "STATUS", "A→Z", "Z→A"):
            links.add_column(column, overflow=FOLD)
        for link in status.links:
            stats = link.stats
            style = {"connected": "green", "cable pulled": "red"}.get(link.state, "yellow")
            state = f"[{style}]{link.state}[/]"
            if link.impairment and not link.down:
                state += f" [magenta]{link.impairment}[/]"
            links.add_row(
                f"{link.a} ↔ {link.z}",
                state,
                _bytes(stats.get("a_to_z_bytes", 0)),
                _bytes(stats.get("z_to_a_bytes", 0)),
            )
        console.print(links)
    for bridge in status.bridges:
        console.print(bridge_line(status.lab, bridge), highlight=False)
    for server, why in status.unreachable.items():
        console.print(
            f"[red]server {server} did not answer[/]: {why}", highlight=False, soft_wrap=True
        )


def _socket(endpoint: str) -> str:
    """A console's or NIC's endpoint as a table shows it: a socket by its name in the lab's
    qemu/ directory (narrow enough for 80 columns), a TCP console as it is."""
    return endpoint.removeprefix("qemu/")


def _process_row(
    name: str, row: NodeStatus | VhostStatus, boot: str, note: str, pool: bool
) -> list[str]:
    """A status table row: a VM, or a virtual host (which shows its VM's process and
    ports); ``pool``: with the server it runs on."""
    style = _STATUS_STYLE.get(row.status, "")
    shown = f"[{style}]{row.status}[/]" if style else row.status
    ports = [str(row.ssh_port), _socket(row.console), str(row.pid or "")]
    return [name, *([row.host] if pool else []), shown, *ports, boot, note]


def _vhost_note(vhost: VhostStatus) -> str:
    if not vhost.addresses:
        return "no address (no host_ip, no peer ip in topology.json)"
    via = f", via {vhost.gateway}" if vhost.gateway else ""
    return ", ".join(vhost.addresses) + via


def bridge_line(lab: str, bridge: BridgeStatus) -> str:
    """One line on a host's bridge: up (and how often it came back), or what to do."""
    where = f"bridge on {bridge.host}"
    condition = bridge.state
    if condition == "unknown":
        return f"[yellow]{where}: unknown[/] (its server did not answer)"
    if condition == "down":
        return f"[red]{where}: down[/] — links are cut; `newtlab repair {lab}` starts it again"
    if condition == "unsupervised":
        return (
            f"[yellow]{where}: running without its supervisor[/] (pid {bridge.bridge_pid}) "
            f"— nothing would restart it; `newtlab repair {lab}` puts one back"
        )
    if condition == "restarting":
        return f"[yellow]{where}: restarting[/] (its supervisor is bringing it back)"
    line = f"[green]{where}: up[/] (pid {bridge.bridge_pid})"
    if bridge.restarts:
        back = time.strftime("%H:%M:%S", time.localtime(bridge.up_since))
        times = "1 time" if bridge.restarts == 1 else f"{bridge.restarts} times"
        line += f", restarted {times}, last back at {back}"
    return line


class ProgressView(_Live):
    """Live per-node progress while a command runs (plain lines when not on a terminal)."""

    def __init__(self, console: Console, nodes: dict[str, str]) -> None:
        """``nodes``: name → host; the host is shown when the lab spans several."""
        self.console = console
        self.started = time.monotonic()
        self.hosts = nodes if len(set(nodes.values())) > 1 else {}
        self.rows: dict[str, tuple[str, str, bool]] = {n: ("waiting", "", False) for n in nodes}
        self.lab_line = ""
        self.live = (
            Live(self._table(), console=console, refresh_per_second=8, transient=False)
            if console.is_terminal
            else None
        )

    def _table(self) -> Table:
        table = Table(title=self.lab_line or None, title_justify="left")
        for column in (
            ("NODE", "HOST", "PHASE", "DETAIL") if self.hosts else ("NODE", "PHASE", "DETAIL")
        ):
            table.add_column(column, overflow=FOLD)
        for node, (phase, detail, failed) in self.rows.items():
            style = "red" if failed else _STATUS_STYLE.get(phase, "")
            shown = f"[{style}]{phase}[/]" if style else phase
            where = [self.hosts[node]] if self.hosts else []
            table.add_row(node, *where, shown, detail)
        return table

    def __call__(self, event: Event) -> None:
        elapsed = time.monotonic() - self.started
        if self.live is None:
            who = event.node or "lab"
            if event.node in self.hosts:
                who += f"@{self.hosts[event.node]}"
            self.console.print(
                f"[{elapsed:6.1f}s] {who}: {event.phase} {event.detail}".rstrip(),
                highlight=False,
                soft_wrap=True,
            )
            return
        if event.node:
            self.rows[event.node] = (event.phase, event.detail, event.failed)
        else:
            self.lab_line = f"{event.phase}: {event.detail}" if event.detail else event.phase
        self.live.update(self._table())


def catalog_table(entries: dict[str, dict[str, Any]]) -> Table:
    """One row per catalog entry: what it is, what it needs, whether it was proven."""
    table = Table(title="Platform catalog (`newtlab platforms NAME` shows one in full)")
    for column in ("NAME", "TYPE", "MEM MiB", "CPUS", "NICS", "CONFIG", "VERIFIED"):
        table.add_column(column, no_wrap=True)
    for name, e in entries.items():
        config = (e.get("vm_startup_config") or {}).get("method", "-")
        table.add_row(
            name, e.get("device_type", "switch"), str(e.get("vm_memory", "-")),
            str(e.get("vm_cpus", "-")), str(e.get("vm_max_nics", "-")), config,
            "yes" if e.get("verified") else "no",
        )  # fmt: skip
    return table


def labs_table(labs: list[LabStatus]) -> Table:
    """``newtlab list``: one row per deployed lab."""
    table = Table()
    for column in ("LAB", "NODES", "RUNNING", "DEPLOYED", "SPECS"):
        table.add_column(column, overflow=FOLD)
    for lab in labs:
        table.add_row(lab.lab, str(len(lab.nodes)), str(lab.running()), lab.created[:19],
                      lab.spec_dir)  # fmt: skip
    return table


_LEVEL_STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red"}


def checks_table(checks: list[Check]) -> Table:
    """``newtlab doctor``: one row per check, its level coloured, with the fix."""
    table = Table()
    for column in ("HOST", "CHECK", "", "DETAIL", "FIX"):
        table.add_column(column, overflow=FOLD)
    for c in checks:
        table.add_row(c.host, c.what, f"[{_LEVEL_STYLE[c.level]}]{c.level}[/]", c.detail, c.fix)
    return table


def pruned_table(pruned: Pruned) -> Table | None:
    """``newtlab prune``: every orphan and unused cache, one row each (None: nothing)."""
    rows: list[tuple[str, str, str]] = [(o.kind, o.lab, o.detail) for o in pruned.orphans]
    rows += [(c.kind, host, f"{c.path} ({c.bytes >> 20} MiB): {c.detail}")
             for host, found in pruned.caches.found.items() for c in found]  # fmt: skip
    if not rows:
        return None
    table = Table()
    for column in ("KIND", "LAB / HOST", "WHAT"):
        table.add_column(column, overflow=FOLD)
    for row in rows:
        table.add_row(*row)
    return table


def link_settings_line(end: str, settings: LinkSettings) -> str:
    """One link's cable and impairment, named by ``end``, in words."""
    a, z = describe(settings.a), describe(settings.z)
    cable = "cable pulled" if settings.down else "cable in"
    shaped = "; ".join(f"{d}: {t}" for d, t in (("A→Z", a), ("Z→A", z)) if t) or "no impairment"
    return f"{end}: {cable}; {shaped}"


def link_settings_table(settings: dict[str, LinkSettings]) -> Table:
    """``newtlab link show``: every link, its cable and each direction's impairment."""
    table = Table()
    for column in ("LINK", "CABLE", "A→Z", "Z→A"):
        table.add_column(column, overflow=FOLD)
    for name, s in settings.items():
        a, _, z = name.partition("--")
        cable = "[red]pulled[/]" if s.down else "in"
        table.add_row(f"{a} ↔ {z}", cable, describe(s.a) or "-", describe(s.z) or "-")
    return table
