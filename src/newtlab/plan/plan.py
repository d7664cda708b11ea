"""Build the lab plan from validated specs: pure, deterministic, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import PlanError, SpecError, SpecErrors
from ..spec.load import Specs
from ..spec.models import NewtlabSection, ReadinessProbe, ServerConfig, VmSave
from ..spec.names import SAFE_NAME_HINT, is_safe_name
from ..templates import TemplateError
from .bridges import nic_endpoint, plan_bridges
from .ifmap import interface_name
from .impairments import plan_link_settings
from .macs import assign_macs
from .model import (
    LOCAL_HOST,
    LOOPBACK,
    Accel,
    Engine,
    HostPlan,
    LinkPlan,
    NicPlan,
    NodePlan,
    PatchPlan,
    Plan,
    ProbePlan,
    SavePlan,
)  # fmt: skip
from .nodes import Homes, NodeSpec, resolve_nodes
from .patches import patch_variables, render_commands, render_patch, resolve_patches
from .pci import PciError, PciLayout, pci_layout, unaddressed_devices
from .placement import place_nodes, place_workers
from .ports import check_ranges, device_ports, link_ports
from .qemu_args import qemu_argv
from .startup import check_config_files, config_variables, plan_startup_config
from .validation import plan_checks
from .vhosts import plan_vhosts


def lab_name_for(spec_dir: Path) -> str:
    """The spec dir's name, or its parent's when it is newtron's ``specs`` folder."""
    resolved = spec_dir.expanduser().resolve()
    return resolved.parent.name if resolved.name == "specs" else resolved.name


def check_lab_name(name: str) -> str:
    if not is_safe_name(name):
        raise PlanError(f"lab name {name!r} is not allowed: {SAFE_NAME_HINT} (use --name)")
    return name


def _pool(
    section: NewtlabSection, resolved: Mapping[str, str], topology_file: str
) -> list[HostPlan]:
    """The server pool (``servers``, else legacy ``hosts``), empty when single-host.

    ``resolved`` maps an address that is a name to its IP (looked up by the caller).
    """
    if section.servers:
        pool = [
            HostPlan(
                name=s.name,
                address=s.address,
                ip=resolved.get(s.address, s.address),
                max_nodes=s.max_nodes,
                user=s.user,
                ssh_port=s.ssh_port,
                identity_file=s.identity_file,
                source_address=s.source_address,
                engine=s.engine,
                libvirt_uri=server_libvirt_uri(s) if s.engine == "libvirt" else "",
            )
            for s in section.servers
        ]
    else:
        pool = [HostPlan(name=n, address=a, ip=resolved.get(a, a))
                for n, a in sorted(section.hosts.items())]  # fmt: skip
    _one_machine_each(pool, field="servers" if section.servers else "hosts")
    return pool


LOCAL_LIBVIRT_URI = "qemu:///system"


def server_libvirt_uri(server: ServerConfig) -> str:
    """A server's libvirt daemon: its ``libvirt_uri``, else over OpenSSH with the pool's
    login for it (user, port and key) and no terminal, so a missing key fails at once
    instead of prompting for a password."""
    if server.libvirt_uri:
        return server.libvirt_uri
    login = f"{server.user}@" if server.user else ""
    where = server.address if server.ssh_port == 22 else f"{server.address}:{server.ssh_port}"
    key = f"keyfile={server.identity_file}&" if server.identity_file else ""
    return f"qemu+ssh://{login}{where}/system?{key}no_tty=1"


def _one_machine_each(pool: list[HostPlan], field: str) -> None:
    """Two servers at one address would bind the same ports: refused before anything."""
    first: dict[str, str] = {}
    for i, host in enumerate(pool):
        if host.ip in first:
            where = (
                f"newtlab.{field}[{i}].address"
                if field == "servers"
                else f"newtlab.hosts.{host.name}"
            )
            raise SpecError(
                "topology.json", where,
                f"servers {first[host.ip]} and {host.name} are the same machine ({host.ip})",
                "give each server a machine of its own, or list the machine once",
            )  # fmt: skip
        first[host.ip] = host.name


def _placement(
    specs: Specs, nodes: list[NodeSpec], pool: list[HostPlan], engine: Engine | None
) -> tuple[list[HostPlan], dict[str, str]]:
    """Where each node runs; a pin (``vm_host``) to no server of the pool names its profile.
    Without a pool, this machine runs them all, with ``engine`` if given (``--engine``)."""
    known = {h.name for h in pool}
    errors = []
    for node in (n for n in nodes if n.pin and n.pin not in known):
        if pool:
            problem = f"{node.port_device} is pinned to unknown server {node.pin!r}"
            fix = f"topology.json's newtlab.servers are {', '.join(sorted(known))}: fix vm_host"
        else:
            problem = (
                f"{node.port_device} is pinned to server {node.pin!r} (vm_host) but "
                "topology.json has no newtlab.servers"
            )
            fix = "add the server pool or remove vm_host"
        errors.append(
            SpecError(str(specs.profiles[node.port_device].path), "vm_host", problem, fix)
        )
    if errors:
        raise SpecErrors(errors)
    for server in pool:
        pinned = [d for n in nodes if n.pin == server.name for d in n.hosts or [n.name]]
        vms = sum(1 for n in nodes if n.pin == server.name)
        if server.max_nodes and vms > server.max_nodes:
            profiles = ", ".join(f"profiles/{d}.json" for d in sorted(pinned))
            raise PlanError(
                f"server {server.name} runs {server.max_nodes} VMs at most (max_nodes) but "
                f"{vms} are pinned to it by vm_host in {profiles} — raise its max_nodes in "
                "topology.json's newtlab.servers, or pin fewer there"
            )
    if pool:
        return pool, place_nodes({n.name: n.pin for n in nodes}, pool)
    section = specs.topology.newtlab
    engine = engine or section.engine
    uri = (section.libvirt_uri or LOCAL_LIBVIRT_URI) if engine == "libvirt" else ""
    local = HostPlan(name=LOCAL_HOST, address=LOOPBACK, ip=LOOPBACK, engine=engine, libvirt_uri=uri)
    return [local], {n.name: LOCAL_HOST for n in nodes}


def _nics(
    node: NodeSpec,
    listens: dict[int, tuple[str, str]],
    macs: dict[tuple[str, int], str],
    pci: PciLayout,
) -> list[NicPlan]:
    """NICs 0..highest linked index; gaps get unconnected NICs so guest names stay in order."""
    nics = []
    for index in range(_nic_count(node)):
        if node.hosts and index in node.host_nics:
            device, iface = node.host_nics[index]
        elif node.hosts or index == 0:
            device, iface = node.name, ""
        else:
            device, iface = node.name, interface_name(node.vm.interface_map, index, node.custom_map)
        guest = (
            f"eth{index}"
            if node.hosts
            else interface_name(node.vm.interface_map, index, node.custom_map)
        )
        listen, link = listens.get(index, (None, None))
        mac = macs[(node.name, -1 if node.nic_mac == "shared" else index)]
        nics.append(
            NicPlan(
                index=index,
                netdev_id="mgmt" if index == 0 else f"eth{index}",
                guest=guest,
                device=device,
                interface=iface,
                mac=mac,
                pci=pci.nics[index].address,
                listen=listen,
                link=link,
            )
        )
    return nics


def _readiness(probes: list[ReadinessProbe], after_boot: bool) -> list[ProbePlan]:
    """The platform's probes (by default an SSH login). When there is work to do over
    SSH after boot, an SSH login comes first unless the list places it; without any,
    a NOS reached only on its console may be ready with no SSH at all."""
    planned = [
        ProbePlan(kind="console", pattern=p.console, timeout=p.timeout or 0)
        if p.console
        else ProbePlan(kind="command", command=p.command, pattern=p.match, timeout=p.timeout or 0)
        if p.command
        else ProbePlan(kind="ssh", timeout=p.timeout or 0)
        for p in probes
    ]
    if not planned or (after_boot and not any(p.kind == "ssh" for p in planned)):
        planned.insert(0, ProbePlan(kind="ssh"))
    return planned


def _check_nic_count(specs: Specs, node: NodeSpec, count: int) -> None:
    """A NOS has as many NICs as its platform says it supports, at most."""
    most = specs.platform_of(node.port_device).vm_max_nics
    if most is not None and count > most:
        raise SpecError(
            str(specs.directory / "platforms.json"),
            f"platforms.{node.vm.platform}.vm_max_nics",
            f"{node.name} needs {count} NICs (management included) but its platform "
            f"supports {most}",
            "link fewer or lower-numbered interfaces (topology.json), or raise vm_max_nics "
            "if the NOS allows",
        )


def _after_boot(
    specs: Specs, node: NodeSpec, variables: dict[str, Any]
) -> tuple[list[PatchPlan], list[str]]:
    """The node's boot patches and post-boot commands, rendered; every problem at once."""
    platform = specs.platform_of(node.port_device)
    profile = specs.profiles[node.port_device]
    key = platform.dataplane or node.vm.platform
    errors: list[SpecError] = []
    patches = []
    for name, directory, builtin in resolve_patches(
        key, platform.vm_image_release, specs.directory
    ):
        try:
            patches.append(render_patch(name, directory, builtin, variables))
        except SpecError as exc:
            errors.append(exc)
    post_boot = []
    platforms_file = str(specs.directory / "platforms.json")
    sources = [(platforms_file, f"platforms.{node.vm.platform}", platform.vm_post_boot),
               (str(profile.path), "", profile.profile.vm_post_boot)]  # fmt: skip
    for file, prefix, commands in sources:
        for i, command in enumerate(commands):
            try:
                post_boot += render_commands([command], variables)
            except TemplateError as exc:
                field = f"{prefix}.vm_post_boot[{i}]".lstrip(".")
                errors.append(SpecError(file, field, str(exc), "fix the template"))
    if errors:
        raise SpecErrors(errors)
    return patches, post_boot


def _accels(hosts: list[HostPlan], accel: Accel | Mapping[str, Accel]) -> dict[str, Accel]:
    if isinstance(accel, Mapping):
        return {h.name: accel.get(h.name, "kvm") for h in hosts}
    return {h.name: accel for h in hosts}


Listens = dict[str, dict[int, tuple[str, str]]]  # VM → NIC index → (listen address, link)


def _plan_links(
    specs: Specs, nodes: list[NodeSpec], host_of: dict[str, str], engines: Mapping[str, Engine]
) -> tuple[list[LinkPlan], Listens]:
    """Each link's two ends (VM, NIC, host, port) and the host running its bridge worker."""
    section = specs.topology.newtlab
    vm_of = {d: n.name for n in nodes for d in (n.hosts or [n.name])}
    node_by_name = {n.name: n for n in nodes}
    workers = place_workers(
        [(host_of[vm_of[ln.a.device]], host_of[vm_of[ln.z.device]]) for ln in specs.links]
    )
    links: list[LinkPlan] = []
    listens: Listens = {n.name: {} for n in nodes}
    for i, (link, worker) in enumerate(zip(specs.links, workers, strict=True)):
        ends = []
        for end, port in zip((link.a, link.z), link_ports(section, i), strict=True):
            vm = node_by_name[vm_of[end.device]]
            nic = vm.nic_of[(end.device, end.interface)]
            listen = nic_endpoint(engines[host_of[vm.name]], vm.name, nic, port)
            listens[vm.name][nic] = (listen, str(link))
            ends.append((vm.name, nic, host_of[vm.name], port))
        (a_vm, a_nic, a_host, a_port), (z_vm, z_nic, z_host, z_port) = ends
        links.append(
            LinkPlan(
                a=str(link.a),
                z=str(link.z),
                a_vm=a_vm,
                z_vm=z_vm,
                a_nic=a_nic,
                z_nic=z_nic,
                a_host=a_host,
                z_host=z_host,
                a_port=a_port,
                z_port=z_port,
                worker_host=worker,
            )
        )
    return links, listens


def _nic_count(node: NodeSpec) -> int:
    return max(node.nic_of.values(), default=0) + 1


def _macs(nodes: list[NodeSpec]) -> dict[tuple[str, int], str]:
    """One MAC per NIC, or one per VM (index -1) where the platform shares it."""
    requests = []
    for node in nodes:
        if node.nic_mac == "shared":
            requests.append((node.name, -1))
        else:
            requests += [(node.name, i) for i in range(_nic_count(node))]
    return assign_macs(requests)


def _plan_node(
    specs: Specs,
    lab: str,
    node: NodeSpec,
    host: HostPlan,
    ssh_bind: str,
    ports: tuple[int, int],
    listens: dict[int, tuple[str, str]],
    macs: dict[tuple[str, int], str],
    accel: Accel,
) -> NodePlan:
    """One VM's plan: its settings, NICs, ports, after-boot work and QEMU argv."""
    ssh_port, console_port = ports
    try:
        pci = pci_layout(
            _nic_count(node), unaddressed_devices(node.vm.disk_driver, node.vm.extra_devices)
        )
    except PciError as exc:
        raise PlanError(
            f"{node.name}: {exc} — link fewer or lower-numbered interfaces (topology.json), or "
            "give its platform fewer vm_extra_devices (platforms.json)"
        ) from None
    nics = _nics(node, listens, macs, pci)
    platform = specs.platform_of(node.port_device)
    variables = patch_variables(node.name, node.vm.platform, platform, nics)
    _check_nic_count(specs, node, len(nics))
    vhosts = plan_vhosts(specs, node.name, node.hosts, nics)
    patches, post_boot = _after_boot(specs, node, variables)
    startup = None
    if not node.hosts:
        config_vars = config_variables(specs, node.port_device, variables)
        login = bool(node.vm.console.login)
        startup = plan_startup_config(specs, lab, node.name, node.port_device, config_vars, login)
    planned = NodePlan(
        **dict(node.vm),
        name=node.name,
        host=host.name,
        engine=host.engine,
        ssh_bind=ssh_bind,
        mac=nics[0].mac,
        ssh_port=ssh_port,
        console_port=console_port if specs.topology.newtlab.console == "tcp" else None,
        hosts=node.hosts,
        vhosts=vhosts,
        nics=nics,
        readiness=_readiness(platform.vm_readiness, bool(vhosts or patches or post_boot)),
        patches=patches,
        post_boot=post_boot,
        startup_config=startup,
        save=_save(platform.vm_save),
        pci_bridges=pci.bridges,
        qemu_argv=[],
    )
    return _on_accel(lab, planned, accel)


def _save(spec: VmSave | None) -> SavePlan | None:
    return SavePlan(command=spec.command, file=spec.file) if spec is not None else None


def _on_accel(lab: str, node: NodePlan, accel: Accel) -> NodePlan:
    """``node`` on ``accel``, its QEMU argv rendered from the finished node plan (a libvirt
    domain's XML is rendered where it runs, with that host's paths)."""
    argv = qemu_argv(lab, node, accel) if node.engine == "qemu" else []
    return node.model_copy(update={"accel": accel, "qemu_argv": argv})


def build_plan(
    specs: Specs,
    lab: str,
    state_dir: Path,
    homes: Homes,
    accel: Accel | Mapping[str, Accel] = "kvm",
    resolved: Mapping[str, str] | None = None,
    engine: Engine | None = None,
) -> Plan:
    """The lab's plan.

    ``accel`` is one accelerator for every host, or one per host name (each
    server proves KVM for itself); ``resolved`` maps server addresses that
    are names to their IPs; ``engine`` runs a lab without servers (else
    ``newtlab.engine``).
    """
    check_lab_name(lab)
    section = specs.topology.newtlab
    nodes = resolve_nodes(specs, homes)
    topology = str(specs.directory / "topology.json")
    hosts, host_of = _placement(specs, nodes, _pool(section, resolved or {}, topology), engine)
    server = {h.name: h for h in hosts}
    accels = _accels(hosts, accel)
    links, listens = _plan_links(specs, nodes, host_of, {h.name: h.engine for h in hosts})
    links = plan_link_settings(section.links, links, str(specs.directory / "topology.json"))
    topology_file = str(specs.directory / "topology.json")
    check_ranges(section, len(specs.topology.devices), len(specs.links), topology_file)
    macs = _macs(nodes)
    check_config_files(specs, {n.port_device for n in nodes if not n.hosts})

    single_host = hosts[0].name == LOCAL_HOST
    device_index = {d: i for i, d in enumerate(sorted(specs.topology.devices))}
    node_plans = []
    errors: list[SpecError] = []
    for node in nodes:
        host = server[host_of[node.name]]
        # newtron reaches a VM at its server's address; on one machine, loopback only
        ssh_bind = LOOPBACK if single_host else host.ip
        ports = device_ports(section, device_index[node.port_device])
        try:
            planned = _plan_node(
                specs, lab, node, host, ssh_bind, ports, listens[node.name], macs, accels[host.name]
            )
        except SpecErrors as exc:
            errors += exc.errors
            continue
        except SpecError as exc:
            errors.append(exc)
            continue
        node_plans.append(planned)
    if errors:
        raise SpecErrors(errors)

    return Plan(
        lab=lab,
        spec_dir=str(specs.directory.resolve()),
        state_dir=str(state_dir),
        accel=accels[node_plans[0].host] if node_plans else "kvm",
        accels={h: accels[h] for h in sorted({n.host for n in node_plans})},
        hosts=hosts,
        nodes=node_plans,
        links=links,
        bridges=plan_bridges(links, server),
        checks=plan_checks(specs, lab, node_plans, section.validate_),
    )


def accelerated(plan: Plan, accels: Mapping[str, Accel]) -> Plan:
    """``plan`` with each host's VMs on the accelerator ``accels`` gives that host
    (what deploy found each host can run); hosts it does not name keep theirs."""
    wanted = {host: accels.get(host, accel) for host, accel in plan.accels.items()}
    if wanted == plan.accels:
        return plan
    nodes = [_on_accel(plan.lab, node, wanted[node.host]) for node in plan.nodes]
    first = wanted[nodes[0].host] if nodes else plan.accel
    return plan.model_copy(update={"nodes": nodes, "accels": wanted, "accel": first})
