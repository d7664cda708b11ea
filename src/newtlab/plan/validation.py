"""The lab's declared tests (``newtlab.validate``), each rendered for every node it runs on.

Pure: the tests and the planned nodes in, ``CheckPlan``s out, in the order
the tests are written and, within a test, its nodes' order. Every string of
a test is a Jinja2 template with these variables:

- ``node``: the node it runs on — ``name``, ``device_type``, ``platform``,
  ``vm`` (the VM it is in: itself, or a virtual host's host VM), ``address``
  (its first address), ``gateway`` (a virtual host's) and ``interfaces``:
  by name, each with ``ip`` (CIDR), ``address`` (without the prefix),
  ``link`` (``NODE:IFACE`` at the other end), ``peer`` (that end's address)
  and ``peer_node``;
- ``nodes``: the same for every node, by name; ``lab``: the lab's name.

A ping's ``to`` is an address, or ``NODE`` / ``NODE:IFACE`` whose address the
topology gives. Every problem of every test is reported at once.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence
from typing import Any

from ..errors import SpecError, SpecErrors
from ..spec.load import Specs
from ..spec.models import regex_problem
from ..spec.validation import ExpectSpec, ValidateTest
from ..suggest import did_you_mean
from ..templates import TemplateError, render
from .model import CheckPlan, NodePlan, QueryPlan
from .verdict import query_problem

# A ping sends one packet a second; it may run this much longer (ARP, a slow first reply),
# and waits at most 2 s for the last replies (busybox's default is 10).
PING_GRACE = 4


def _bare(cidr: str) -> str:
    return cidr.split("/", 1)[0]


def target_variables(specs: Specs, nodes: Sequence[NodePlan]) -> dict[str, dict[str, Any]]:
    """What a template knows of each node (VM or virtual host), by name."""
    found: dict[str, dict[str, Any]] = {}
    for vm in nodes:
        declared = specs.topology.devices.get(vm.name)  # None for a host VM of virtual hosts
        ips = {n: i.ip or "" for n, i in declared.interfaces.items()} if declared else {}
        found[vm.name] = _variables(vm.name, vm.device_type, vm.platform, vm.name, ips)
        for vhost in vm.vhosts:
            platform = specs.platform_of(vhost.name)
            ips = {i.name: i.address for i in vhost.interfaces}
            found[vhost.name] = _variables(
                vhost.name, platform.device_type, specs.platform_name(vhost.name), vm.name, ips
            )
            found[vhost.name]["gateway"] = vhost.gateway
    for link in specs.links:
        for near, far in ((link.a, link.z), (link.z, link.a)):
            if near.device not in found:
                continue
            interfaces = found[near.device]["interfaces"]
            iface = interfaces.setdefault(near.interface, _interface(near.interface, ""))
            iface["link"] = str(far)
            iface["peer_node"] = far.device
    for entry in found.values():  # the peers' addresses, once every interface is known
        for iface in entry["interfaces"].values():
            if iface["link"]:
                device, _, name = iface["link"].partition(":")
                far = found.get(device, {}).get("interfaces", {}).get(name)
                iface["peer"] = far["address"] if far else ""
        first = next((i["address"] for i in entry["interfaces"].values() if i["address"]), "")
        entry["address"] = first
    return found


def _interface(name: str, ip: str) -> dict[str, Any]:
    return {"name": name, "ip": ip, "address": _bare(ip), "link": "", "peer": "", "peer_node": ""}


def _variables(
    name: str, device_type: str, platform: str, vm: str, ips: dict[str, str]
) -> dict[str, Any]:
    return {
        "name": name,
        "device_type": device_type,
        "platform": platform,
        "vm": vm,
        "gateway": "",
        "address": "",
        "interfaces": {n: _interface(n, ip) for n, ip in ips.items()},
    }


class _Expander:
    """Renders tests for their nodes, collecting every problem."""

    def __init__(self, specs: Specs, lab: str, targets: dict[str, dict[str, Any]]) -> None:
        self.specs = specs
        self.lab = lab
        self.targets = targets
        self.file = str(specs.directory / "topology.json")
        self.errors: list[SpecError] = []

    def error(self, at: str, problem: str, fix: str = "") -> None:
        self.errors.append(SpecError(self.file, at, problem, fix))

    def nodes_of(self, test: ValidateTest, at: str) -> list[str]:
        devices = [n for n in self.targets if n in self.specs.topology.devices]
        if test.nodes is not None:
            unknown = [n for n in test.nodes if n not in self.targets]
            for name in unknown:
                self.error(f"{at}.nodes", f"no node {name!r}{did_you_mean(name, self.targets)}",
                           f"name nodes of this lab: {', '.join(self.targets)}")  # fmt: skip
            return list(dict.fromkeys(n for n in test.nodes if n in self.targets))
        if test.device_type is not None:
            chosen = [n for n in devices if self.targets[n]["device_type"] == test.device_type]
            what = f"device_type {test.device_type!r}"
        else:
            chosen = [n for n in devices if self.targets[n]["platform"] == test.platform]
            what = f"platform {test.platform!r}"
        if not chosen:
            self.error(at, f"no node of {what}: the test would run nowhere",
                       "pick another, or name its nodes")  # fmt: skip
        return sorted(chosen)

    def expand(self, index: int, test: ValidateTest) -> list[CheckPlan]:
        at = f"newtlab.validate[{index}] ({test.name})"
        checks = []
        for node in self.nodes_of(test, at):
            variables = {"node": self.targets[node], "nodes": self.targets, "lab": self.lab}
            before = len(self.errors)
            check = _Check(self, test, node, variables, at).plan()
            if len(self.errors) == before:
                checks.append(check)
        return checks


class _Check:
    """One test rendered for one node."""

    def __init__(
        self, owner: _Expander, test: ValidateTest, node: str, variables: dict[str, Any], at: str
    ) -> None:
        self.owner = owner
        self.test = test
        self.node = node
        self.variables = variables
        self.at = at

    def text(self, field: str, template: str) -> str:
        try:
            return render(template, self.variables)
        except TemplateError as exc:
            self.owner.error(f"{self.at}.{field}", f"for {self.node}: {exc}",
                             "fix the template (variables: node, nodes, lab)")  # fmt: skip
            return ""

    def plan(self) -> CheckPlan:
        test = self.test
        fields: dict[str, Any] = {
            "test": test.name,
            "node": self.node,
            "kind": test.kind,
            "description": self.text("description", test.description),
            "timeout": test.timeout,
            "fail": self.text("fail", test.fail),
        }
        if test.wait is not None:
            fields.update(wait=test.wait.timeout, interval=test.wait.interval)
        if test.ping is not None:
            to = self.address(self.text("ping.to", test.ping.to))
            source = self.text("ping.source", test.ping.source)
            deadline = str(test.ping.count + PING_GRACE)
            argv = ["ping", "-c", str(test.ping.count), "-W", "2", "-w", deadline]
            argv += ["-I", source] if source else []
            fields.update(command=shlex.join([*argv, to]), ping_to=to, loss=test.ping.loss)
        elif test.exec is not None:
            argv = [self.text(f"exec[{i}]", word) for i, word in enumerate(test.exec)]
            fields["command"] = shlex.join(argv)
        else:
            fields["command"] = self.text("ssh", test.ssh or "")
        fields.update(self.expectations(test.expect or ExpectSpec()))
        return CheckPlan(**fields)

    def expectations(self, expect: ExpectSpec) -> dict[str, Any]:
        exit_ = [expect.exit] if isinstance(expect.exit, int) else expect.exit
        found: dict[str, Any] = {"exit": exit_}
        for field in ("match", "no_match"):
            pattern = self.text(f"expect.{field}", getattr(expect, field))
            problem = regex_problem(pattern)
            if problem:
                self.owner.error(f"{self.at}.expect.{field}", f"for {self.node}: {problem}")
            found[field] = pattern
        if expect.query:
            query = self.text("expect.query", expect.query)
            problem = query_problem(query)
            if problem:
                self.owner.error(f"{self.at}.expect.query", f"for {self.node}: {problem}",
                                 "see jmespath.org for the syntax")  # fmt: skip
            condition = next(
                (c for c in ("equals", "contains", "count") if c in expect.model_fields_set),
                "true",
            )
            value = getattr(expect, condition) if condition != "true" else None
            if isinstance(value, str):
                value = self.text(f"expect.{condition}", value)
            found["query"] = QueryPlan(query=query, test=condition, value=value)
        return found

    def address(self, to: str) -> str:
        """The address a ping goes to: as written, or the topology's for a node name."""
        try:
            return str(ipaddress.ip_address(to))
        except ValueError:
            pass
        name, _, iface = to.partition(":")
        targets = self.owner.targets
        field = f"{self.at}.ping.to"
        if name not in targets:
            self.owner.error(field, f"for {self.node}: {to!r} is no address and no node of the "
                             f"lab{did_you_mean(name, targets)}",
                             "give an IP address, NODE or NODE:IFACE")  # fmt: skip
            return to
        entry = targets[name]
        if not iface:
            if not entry["address"]:
                self.owner.error(field, f"for {self.node}: {name} has no address in the "
                                 f"topology", f"give {name}'s interfaces an \"ip\", or ping an "
                                 "address")  # fmt: skip
            return str(entry["address"]) or to
        found = entry["interfaces"].get(iface)
        if found is None or not found["address"]:
            why = "no such interface" if found is None else "no address in the topology"
            names = ", ".join(entry["interfaces"]) or "none"
            self.owner.error(field, f"for {self.node}: {to}: {why}",
                             f"{name}'s interfaces: {names}")  # fmt: skip
            return to
        return str(found["address"])


def plan_checks(
    specs: Specs, lab: str, nodes: Sequence[NodePlan], tests: Sequence[ValidateTest]
) -> list[CheckPlan]:
    """Every test on each of its nodes; ``SpecErrors`` naming each bad test and field."""
    if not tests:
        return []
    expander = _Expander(specs, lab, target_variables(specs, nodes))
    seen: set[str] = set()
    for i, test in enumerate(tests):
        if test.name in seen:
            at = f"newtlab.validate[{i}] ({test.name}).name"
            expander.error(at, f"two tests are named {test.name!r}", "give each its own name")
        seen.add(test.name)
    checks = [check for i, test in enumerate(tests) for check in expander.expand(i, test)]
    if expander.errors:
        raise SpecErrors(expander.errors)
    return checks
