"""The lab plan: everything deploy will do, as data.

A plan is computed from the specs by pure functions and serialises to JSON
(``newtlab plan --json``). The same specs always give the same plan; deploy
stores it in the lab state so later commands act on what was deployed, not
on files that may have changed since.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ..agent import layout

Accel = Literal["kvm", "tcg"]
LOCAL_HOST = "local"
Engine = Literal["qemu", "libvirt"]
LOOPBACK = "127.0.0.1"  # where a lab listens unless a server pool needs its host's address


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HostPlan(_Frozen):
    """A machine that runs part of the lab (``local`` when there is no server pool)."""

    name: str
    address: str = Field(description="as written in the spec: an IP or a name")
    ip: str = Field(description="the address resolved: what is bound, dialled and allowed")
    max_nodes: int = 0
    user: str = ""
    ssh_port: int = 22
    identity_file: str = ""
    source_address: str = Field(default="", description="the IP its bridge dials others from")
    engine: Engine = Field(default="qemu", description="what runs its VMs: qemu or libvirt")
    libvirt_uri: str = Field(default="", description="its libvirt daemon (engine libvirt)")

    @property
    def peer_ip(self) -> str:
        """The address other servers see this one's connections come from."""
        return self.source_address or self.ip


class NicPlan(_Frozen):
    index: int
    netdev_id: str
    guest: str = Field(description="the name the guest OS gives this NIC")
    device: str = Field(description="topology device owning the interface")
    interface: str = Field(description="topology interface name ('' if unnamed)")
    mac: str
    pci: str = Field(default="", description="the guest's PCI address of this NIC, 0000:BB:SS.0")
    listen: str | None = Field(
        default=None,
        description="where it listens for its host's bridge: a Unix socket in the lab "
        "directory, or 127.0.0.1:PORT for a libvirt domain (None: unlinked)",
    )
    link: str | None = None


class DialogStepPlan(_Frozen):
    """One console dialog step (see ``spec.models.DialogStep``), defaults filled in."""

    name: str
    expect: str
    send: str | None = None
    optional: bool = False
    timeout: float | None = None
    retries: int = 0
    nudge: bool = False


class ConsolePlan(_Frozen):
    user: str
    password: str
    login: list[DialogStepPlan]
    ignore: list[str] = Field(
        default_factory=list, description="removed from the output before prompts are matched"
    )
    fail: list[str] = Field(default_factory=list, description="end the dialog with an error")
    bootstrap: list[str]
    create_user: list[str]
    install_key: list[str]
    set_password: list[str] = Field(
        default_factory=list, description="run when the console logged in without a password"
    )


class HostInterfacePlan(_Frozen):
    """One interface of a virtual host: a NIC of its host VM, moved into its namespace."""

    name: str = Field(description="its name inside the host: eth0, eth1, …")
    nic: int = Field(description="the host VM's NIC carrying it")
    mac: str
    address: str = Field(default="", description="CIDR, or '' when it has none")
    peer: str = Field(default="", description="the address at the link's other end, if any")


class VirtualHostPlan(_Frozen):
    """A virtual host: its own network and UTS namespaces inside a host VM."""

    name: str
    vm: str
    index: int = Field(description="its position among the hosts of its VM")
    interfaces: list[HostInterfacePlan]
    gateway: str = Field(default="", description="its default route ('' for none)")

    @property
    def namespace(self) -> str:
        return self.name

    @property
    def addresses(self) -> list[str]:
        return [i.address for i in self.interfaces if i.address]


class ProbePlan(_Frozen):
    """A readiness probe: ``kind`` console (regex seen), ssh (login) or command (output matches)."""

    kind: Literal["console", "ssh", "command"]
    pattern: str = Field(default="", description="console: the regex; command: what must match")
    command: str = ""
    timeout: int = Field(default=0, description="seconds; 0: what the boot timeout leaves")

    @property
    def label(self) -> str:
        if self.kind == "console":
            return f"console shows /{self.pattern}/"
        if self.kind == "command":
            wanted = f" matching /{self.pattern}/" if self.pattern else ""
            return f"`{self.command}`{wanted}"
        return "SSH login"


class PatchFilePlan(_Frozen):
    dest: str
    content: str


class PatchRedisPlan(_Frozen):
    db: int
    commands: str


class PatchPlan(_Frozen):
    """One boot patch, rendered for its node: applied in this order after SSH answers."""

    name: str = Field(description="the descriptor's file name")
    source: str = Field(description="the descriptor's path ('built-in:' for newtlab's own)")
    description: str = ""
    sonic_releases: list[str] = Field(
        default_factory=list,
        description="the SONiC releases it was written for; when set, it runs on no other",
    )
    pre_commands: list[str] = Field(default_factory=list)
    disable_files: list[str] = Field(default_factory=list)
    files: list[PatchFilePlan] = Field(default_factory=list)
    redis: list[PatchRedisPlan] = Field(default_factory=list)
    post_commands: list[str] = Field(default_factory=list)


class SavePlan(_Frozen):
    """How ``newtlab save`` reads the node's running configuration (``vm_save``)."""

    command: str = Field(default="", description="run over SSH; its output, without file")
    file: str = Field(default="", description="the guest's file holding it, after command")


class StartupConfigPlan(_Frozen):
    """A node's ``configs/<device>.cfg``, rendered, and how the VM receives it."""

    method: Literal["iso", "nocloud", "console"]
    source: str = Field(description="the template file")
    content: str = Field(description="the configuration, rendered")
    iso: str = Field(default="", description="lab-relative path of the ISO (iso, nocloud)")
    label: str = ""
    drive: Literal["cdrom", "usb"] = "cdrom"
    files: dict[str, str] = Field(default_factory=dict, description="path on the ISO → content")
    directories: list[str] = Field(default_factory=list, description="empty ones on the ISO")
    before: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)
    prompt: str = ""
    fail: list[str] = Field(default_factory=list)
    timeout: float = 30


class VmSettings(_Frozen):
    """How one VM is configured, resolved profile > platform > built-in defaults.

    The node resolver produces it; a node's plan is these settings plus where the
    VM runs and what it is connected to.
    """

    device_type: str
    platform: str
    network_os: str = Field(default="", description="Ansible's ansible_network_os")
    image: str
    image_sha256: str = Field(default="", description="checked before deploy when given")
    kernel: str = Field(default="", description="booted directly ('': the disk's boot loader)")
    initrd: str = ""
    kernel_cmdline: str = ""
    memory: int
    cpus: int
    nic_driver: str
    disk_driver: str
    interface_map: str
    cpu_features: str
    firmware: Literal["bios", "uefi"] = "bios"
    smbios: list[str] = Field(default_factory=list)
    ssh_user: str
    ssh_pass: str
    console: ConsolePlan
    boot_timeout: int
    dataplane: str
    image_release: str
    extra_devices: list[str] = Field(default_factory=list)


class NodePlan(VmSettings):
    name: str
    host: str
    engine: Engine = Field(default="qemu", description="what runs it (its host's engine)")
    accel: Accel = Field(default="kvm", description="its accelerator (its host's)")
    ssh_bind: str = Field(description="where QEMU forwards SSH: loopback, or its server's IP")
    mac: str
    ssh_port: int
    console_port: int | None = Field(
        default=None,
        description="its serial console's TCP port on loopback (newtlab.console: tcp); "
        "None: a Unix socket in the lab directory, its owner's only",
    )
    hosts: list[str] = Field(default_factory=list)
    vhosts: list[VirtualHostPlan] = Field(default_factory=list)
    nics: list[NicPlan]
    readiness: list[ProbePlan] = Field(default_factory=lambda: [ProbePlan(kind="ssh")])
    patches: list[PatchPlan] = Field(default_factory=list)
    post_boot: list[str] = Field(default_factory=list, description="commands run after patches")
    startup_config: StartupConfigPlan | None = None
    save: SavePlan | None = None
    pci_bridges: list[int] = Field(
        default_factory=list, description="bus-0 slots of pci-bridges for NICs beyond bus 0"
    )
    qemu_argv: list[str]

    @property
    def console_endpoint(self) -> str:
        """Where its serial console listens: a Unix socket (relative to the lab directory
        on its host), or 127.0.0.1:PORT for a lab with TCP consoles."""
        if self.console_port is None:
            return layout.console_socket(self.name)
        return f"{LOOPBACK}:{self.console_port}"


class LinkSettings(_Frozen):
    """How a link behaves beyond carrying frames: a pulled cable, and each direction's
    impairment in the bridge's units (seconds, fractions, bits per second) — ``a``
    for the frames coming from the A end, ``z`` for those from the Z end."""

    down: bool = False
    a: dict[str, float] = Field(default_factory=dict)
    z: dict[str, float] = Field(default_factory=dict)

    @property
    def impaired(self) -> bool:
        return bool(self.a or self.z)

    def bridge(self) -> dict[str, object]:
        """What the bridge's control socket takes (``newtlink.control``)."""
        found: dict[str, object] = {"down": True} if self.down else {}
        found.update({side: dict(v) for side, v in (("a", self.a), ("z", self.z)) if v})
        return found


class LinkPlan(_Frozen):
    """One link: each end is a VM NIC listening on a Unix socket on its own host.

    ``worker_host`` is where the link's two ends meet: the host of both ends,
    or for a link between servers, the one whose bridge listens for the other.
    """

    a: str
    z: str
    a_vm: str
    z_vm: str
    a_nic: int
    z_nic: int
    a_host: str
    z_host: str
    a_port: int
    z_port: int
    worker_host: str
    settings: LinkSettings = Field(default_factory=LinkSettings, description="from deploy on")

    @property
    def name(self) -> str:
        """The link as its bridge names it."""
        return f"{self.a}--{self.z}"


class BridgeSidePlan(_Frozen):
    """How one bridge reaches one end of a link: it dials it, or listens for it."""

    name: str = Field(description="the link end, device:interface")
    dial: str = Field(default="", description="address dialled (a local VM or the far bridge)")
    source: str = Field(default="", description="the local address a far bridge is dialled from")
    listen: str = Field(default="", description="address listened on for the far bridge")
    allow: list[str] = Field(default_factory=list, description="peers a listening side accepts")


class BridgeLinkPlan(_Frozen):
    a: BridgeSidePlan
    z: BridgeSidePlan
    worker: bool = Field(
        default=False, description="this bridge is the link's worker: it impairs and captures"
    )


class BridgePlan(_Frozen):
    """The newtlink bridge of one host: every link with an end on that host."""

    host: str
    links: list[BridgeLinkPlan]


class QueryPlan(_Frozen):
    """A JMESPath ``query`` over a command's JSON output and the ``test`` its result
    must pass: ``equals`` / ``contains`` ``value``, ``count`` items, or be ``true``."""

    query: str
    test: Literal["equals", "contains", "count", "true"] = "true"
    value: JsonValue = None


class CheckPlan(_Frozen):
    """One declared test (``newtlab.validate``) on one node, rendered for it.

    ``command`` is what runs over the node's SSH login, exactly: a ping's or an
    ``exec`` argv quoted word by word, an ``ssh`` line as written.
    """

    test: str = Field(description="the test's name")
    node: str = Field(description="where it runs: a VM or a virtual host")
    kind: Literal["ping", "exec", "ssh"]
    description: str = ""
    command: str
    ping_to: str = Field(default="", description="ping: the address pinged")
    loss: float = Field(default=0, description="ping: the most loss allowed, in percent")
    exit: list[int] | None = Field(default_factory=lambda: [0], description="None: any status")
    match: str = ""
    no_match: str = ""
    query: QueryPlan | None = None
    timeout: float = Field(default=30, description="seconds one run may take")
    wait: float = Field(default=0, description="seconds to keep trying until it holds")
    interval: float = 2
    fail: str = Field(default="", description="what it means when it fails")

    @property
    def id(self) -> str:
        return f"{self.test}[{self.node}]"


class Plan(_Frozen):
    lab: str
    spec_dir: str
    state_dir: str
    accel: Accel = Field(description="the accelerator (the first host's, if they differ)")
    accels: dict[str, Accel] = Field(description="the accelerator of each host with VMs")
    hosts: list[HostPlan]
    nodes: list[NodePlan]
    links: list[LinkPlan]
    bridges: dict[str, BridgePlan]
    checks: list[CheckPlan] = Field(
        default_factory=list, description="newtlab.validate: each test on each of its nodes"
    )

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"
