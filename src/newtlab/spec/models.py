"""Pydantic models of the newtron spec files that newtlab reads.

Every model accepts unknown fields: the same files are read by newtron and
carry its own settings, and profiles must be written back without loss.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import catalog
from .names import (
    HOST_ADDRESS_HINT,
    SAFE_NAME_HINT,
    is_host_address,
    is_interface_name,
    is_ip_address,
    is_safe_name,
)
from .validation import ValidateTest

InterfaceMapKind = Literal["sequential", "stride-4", "custom", "linux"]
DeviceType = Literal["switch", "router", "host"]
NicMacPolicy = Literal["shared", "per-nic"]
SHA256_PATTERN = r"^([0-9a-fA-F]{64})?$"


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable regular expression, or None if it is."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"{pattern!r} is not a regular expression: {exc}"
    except (RecursionError, OverflowError):  # "((((…" nested too deeply, "a{99999999999}"
        shown = pattern if len(pattern) <= 40 else pattern[:40] + "…"
        return f"{shown!r} is too deeply nested or repeats too often to be a regular expression"
    return None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class VMCredentials(_Open):
    user: str
    password: str = Field(alias="pass")


class DialogStep(_Open):
    """One step of a console dialog: wait for a prompt, then type something.

    ``expect`` is a regex matched only at the end of what the console has
    printed so far (a prompt waits for input there). ``send`` (Jinja2, the
    dialog variables unquoted) is typed followed by Enter; without it the
    step only waits. An ``optional`` prompt may not show: while waiting for
    it the next steps' prompts are watched too (up to the next required one)
    and the dialog moves on to whichever shows. ``timeout``: seconds for
    this step (default: what the boot timeout leaves); ``retries``: on a
    timeout, type again what the previous step typed and wait again, this
    many times; ``nudge``: press Enter while waiting (default: the first
    step only, for a prompt printed before newtlab connected).
    """

    name: str | None = None
    expect: str
    send: str | None = None
    optional: bool = False
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    retries: int = Field(default=0, ge=0)
    nudge: bool | None = None


class ConsoleDialog(_Open):
    """How to log in on a VM's serial console and prepare it for SSH.

    ``login`` is the dialog as ordered expect/send steps; without it the
    usual three are built from ``login_prompt`` (user name, optional),
    ``password_prompt`` (password, optional) and ``shell_prompt``.
    ``ignore``: regexes removed from the output before prompts are matched
    (log lines that interrupt a prompt); ``fail``: regexes that end the
    dialog at once (``Login incorrect``).

    Each command list runs in order after login. The commands are Jinja2
    templates: ``{{ ssh_user }}``, ``{{ ssh_pass }}``, ``{{ ssh_pubkey }}``,
    ``{{ hostname }}``, ``{{ console_user }}`` and ``{{ console_pass }}`` are
    shell-quoted values. ``set_password``
    runs first when the console logged in without asking for a password
    (autologin), so that ``vm_credentials`` work for SSH too; ``create_user``
    runs only when the SSH user differs from the console user. Unset fields
    take the device type's defaults.
    """

    login: list[DialogStep] | None = None
    login_prompt: str | None = None
    password_prompt: str | None = None
    shell_prompt: str | None = None
    ignore: list[str] | None = None
    fail: list[str] | None = None
    bootstrap: list[str] | None = None
    create_user: list[str] | None = None
    install_key: list[str] | None = None
    set_password: list[str] | None = None


class ReadinessProbe(_Open):
    """One thing a node must show before it counts as ready; exactly one kind per probe.

    ``console``: a regex its serial console shows (since QEMU started);
    ``ssh``: a real SSH login; ``command``: run over SSH until its output
    matches the regex ``match`` (without one: until it exits 0), retried every
    2 s. ``timeout``: seconds from when the probe starts (default: what the
    boot timeout leaves).
    """

    console: str | None = None
    ssh: bool | None = None
    command: str | None = None
    match: str = ""
    timeout: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> ReadinessProbe:
        kinds = [k for k in ("console", "ssh", "command") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError('a probe has exactly one of "console", "ssh" (true) or "command"')
        for pattern in (self.console, self.match):
            problem = regex_problem(pattern or "")
            if problem:
                raise ValueError(problem)
        return self


class StartupConfig(_Open):
    """How a platform takes ``configs/<device>.cfg`` (a Jinja2 template).

    ``iso``: written as ``file`` on an ISO labelled ``label``, attached as a
    CD-ROM (``drive: cdrom``) or a USB stick (``usb``); ``nocloud``: a
    cloud-init NoCloud seed (``cidata``: the file is its ``user-data``);
    ``console``: typed on the serial console after the login dialog, line by
    line, each followed by ``prompt`` (a regex), between ``before`` and
    ``after`` lines (``configure terminal`` … ``end``); a line answered by
    a ``fail`` regex (``% Invalid input``) fails the node.
    """

    method: Literal["iso", "nocloud", "console"]
    file: str = ""
    label: str = ""
    drive: Literal["cdrom", "usb"] = "cdrom"
    directories: list[str] = Field(default_factory=list)  # iso: empty ones the NOS expects
    before: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)
    prompt: str = ""
    fail: list[str] = Field(default_factory=list)  # console: a line was refused
    timeout: float = Field(default=30, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _complete(self) -> StartupConfig:
        if self.method == "iso" and not (self.file and self.label):
            raise ValueError('method "iso" needs "file" (its name on the ISO) and "label"')
        if self.method == "console" and not self.prompt:
            raise ValueError('method "console" needs "prompt": a regex of the CLI prompt')
        for pattern in [self.prompt, *self.fail]:
            problem = regex_problem(pattern)
            if problem:
                raise ValueError(problem)
        return self


class VmSave(_Open):
    """How ``newtlab save`` reads a node's running configuration over SSH: ``command``'s
    output is it; with ``file``, ``command`` runs first (may be empty) and that file of
    the guest is it (SONiC: ``sudo config save -y``, then /etc/sonic/config_db.json)."""

    command: str = ""
    file: str = ""

    @model_validator(mode="after")
    def _something(self) -> VmSave:
        if not self.command and not self.file:
            raise ValueError('vm_save needs "command" (its output is the configuration), '
                             '"file" (the configuration), or both')  # fmt: skip
        return self


class PlatformSpec(_Open):
    hwsku: str = ""
    description: str = ""
    port_count: int = 0
    default_speed: str = ""
    breakouts: list[str] = Field(default_factory=list)
    device_type: DeviceType = "switch"
    network_os: str = ""  # Ansible's ansible_network_os ('' for a Linux host: plain ssh)
    vm_image: str = ""
    vm_image_sha256: str = Field(default="", pattern=SHA256_PATTERN)  # checked before deploy
    # A kernel QEMU starts directly (-kernel: an ELF with PVH's entry note, or a
    # bzImage), skipping the disk's boot loader; the paths resolve like vm_image.
    vm_kernel: str = ""
    vm_initrd: str = ""
    vm_kernel_cmdline: str = ""
    vm_memory: int | None = Field(default=None, gt=0)
    vm_cpus: int | None = Field(default=None, gt=0)
    vm_nic_driver: str = ""
    vm_disk_driver: Literal["", "virtio", "ide", "sata", "scsi"] = ""
    vm_interface_map: InterfaceMapKind | None = None
    vm_interface_map_custom: dict[str, int] | None = None
    vm_nic_mac: NicMacPolicy | None = None
    vm_cpu_features: str = ""
    vm_credentials: VMCredentials | None = None
    vm_boot_timeout: int | None = Field(default=None, gt=0)
    vm_extra_devices: list[str] = Field(default_factory=list)
    vm_console: ConsoleDialog | None = None
    dataplane: str = ""
    vm_image_release: str = ""
    vm_post_boot: list[str] = Field(default_factory=list)  # over SSH, after boot patches
    vm_readiness: list[ReadinessProbe] = Field(default_factory=list)  # default: an SSH login
    vm_firmware: Literal["bios", "uefi"] = "bios"  # uefi: OVMF (Debian package ovmf)
    vm_smbios: list[str] = Field(default_factory=list)  # each a QEMU -smbios value
    vm_max_nics: int | None = Field(default=None, gt=0)  # management NIC included
    vm_first_data_nic: int | None = Field(default=None, gt=0)
    vm_startup_config: StartupConfig | None = None
    vm_save: VmSave | None = None  # how `newtlab save` reads its running configuration
    base: str | None = None  # a catalog entry this one starts from
    source: dict[str, str] = Field(default_factory=dict)  # where each value comes from
    verified: bool = False  # a real image was booted with this entry

    @model_validator(mode="before")
    @classmethod
    def _from_base(cls, data: object) -> object:
        if not isinstance(data, dict) or not isinstance(data.get("base"), str):
            return data  # a base that is no name: the field's own validation says so
        try:
            return catalog.based(data)
        except KeyError:
            names = ", ".join(catalog.catalog())
            raise ValueError(
                f"base {data['base']!r} is not in newtlab's catalog ({names}); "
                "`newtlab platforms` shows each"
            ) from None

    @model_validator(mode="after")
    def _kernel_for_its_parts(self) -> PlatformSpec:
        if (self.vm_initrd or self.vm_kernel_cmdline) and not self.vm_kernel:
            raise ValueError('"vm_initrd" and "vm_kernel_cmdline" need "vm_kernel"')
        if self.vm_kernel and self.vm_firmware == "uefi":
            raise ValueError('"vm_kernel" boots with the BIOS firmware: drop "vm_firmware": "uefi"')
        return self

    @field_validator("dataplane", "vm_image_release")
    @classmethod
    def _directory_name(cls, value: str) -> str:
        """Each names a directory of boot patches (``patches/<dataplane>/<release>``)."""
        if value and not is_safe_name(value):
            raise ValueError(f"{value!r} is not allowed: {SAFE_NAME_HINT} (64 at most)")
        return value

    @field_validator("vm_interface_map_custom")
    @classmethod
    def _custom_indices_are_data_nics(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is None:
            return value
        seen: dict[int, str] = {}
        for name, index in value.items():
            if index < 1:
                raise ValueError(f"{name!r} maps to NIC {index}; data NICs start at 1 (0 is mgmt)")
            if index in seen:
                raise ValueError(f"{name!r} and {seen[index]!r} both map to NIC {index}")
            seen[index] = name
        return value


class PlatformsFile(_Open):
    version: str = ""
    platforms: dict[str, PlatformSpec]


class DeviceProfile(_Open):
    platform: str = ""
    mgmt_ip: str = ""
    ssh_user: str = ""
    ssh_pass: str = ""
    vm_image: str = ""
    vm_image_sha256: str = Field(default="", pattern=SHA256_PATTERN)
    vm_memory: int | None = Field(default=None, gt=0)
    vm_cpus: int | None = Field(default=None, gt=0)
    vm_host: str = ""
    vm_post_boot: list[str] = Field(default_factory=list)  # after the platform's
    host_ip: str = ""  # a virtual host's address (CIDR); derived from its links when unset
    host_gateway: str = ""  # a virtual host's default route; derived when unset


class TopologyInterface(_Open):
    link: str | None = None
    ip: str | None = None  # the interface's address (CIDR): virtual hosts derive theirs from it


class TopologyDevice(_Open):
    interfaces: dict[str, TopologyInterface] = Field(default_factory=dict)

    @field_validator("interfaces")
    @classmethod
    def _interface_names(cls, value: dict[str, TopologyInterface]) -> dict[str, TopologyInterface]:
        for name in value:
            if not is_interface_name(name):
                raise ValueError(
                    f"interface name {name!r} is not allowed: use letters, digits, "
                    "'_', '.', '/' and '-'"
                )
        return value


class TopologyLink(_Open):
    a: str
    z: str


LOCAL_HOST = "local"  # the plan's name of this machine when there is no pool (plan.model)


def _server_name(name: str) -> str:
    if not is_safe_name(name):
        raise ValueError(f"server name {name!r} is not allowed: {SAFE_NAME_HINT}")
    if name == LOCAL_HOST:
        raise ValueError(f"server name {name!r} is reserved for this machine: pick another")
    return name


class ServerConfig(_Open):
    """One server of the pool, reached over SSH (as ``ssh`` would: agent, keys, config)."""

    name: str
    address: str  # an IP or a name, resolved once per command
    max_nodes: int = Field(default=0, ge=0)
    user: str = ""  # default: the current user (or ~/.ssh/config's User)
    ssh_port: int = Field(default=22, ge=1, le=65535)
    identity_file: str = ""
    source_address: str = ""  # this server's address towards the others, if it has several
    engine: Literal["qemu", "libvirt"] = "qemu"  # what runs its VMs
    libvirt_uri: str = ""  # default: qemu+ssh://USER@ADDRESS:PORT/system with its ssh settings

    @field_validator("name")
    @classmethod
    def _safe(cls, value: str) -> str:
        return _server_name(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not is_host_address(value):
            raise ValueError(f"server address {value!r} is not allowed: {HOST_ADDRESS_HINT}")
        return value

    @field_validator("source_address")
    @classmethod
    def _source_ip(cls, value: str) -> str:
        if value and not is_ip_address(value):
            raise ValueError(f"source_address {value!r} is not an IP address")
        return value


Port = int


class LinkSettingsSpec(BaseModel):
    """``newtlab.links.<NODE:IFACE>``: how that link behaves from deploy on."""

    model_config = ConfigDict(extra="forbid")
    delay: str | None = None
    jitter: str | None = None
    loss: str | None = None
    rate: str | None = None
    corrupt: str | None = None
    duplicate: str | None = None
    direction: Literal["both", "out", "in"] = "both"
    down: bool = False


class NewtlabSection(_Open):
    links: dict[str, LinkSettingsSpec] = Field(default_factory=dict)
    link_port_base: int = Field(default=20000, ge=1024, le=65535)
    console_port_base: int = Field(default=30000, ge=1024, le=65535)
    # Serial consoles on Unix sockets in the lab's directory (its owner's only), or on
    # TCP ports console_port_base + index on loopback (anyone on the machine).
    console: Literal["unix", "tcp"] = "unix"
    ssh_port_base: int = Field(default=40000, ge=1024, le=65535)
    # What runs the VMs of a lab on this machine (servers say their own): QEMU started by
    # newtlab, or libvirt domains (libvirt_uri, default qemu:///system).
    engine: Literal["qemu", "libvirt"] = "qemu"
    libvirt_uri: str = ""
    hosts: dict[str, str] = Field(default_factory=dict)
    servers: list[ServerConfig] = Field(default_factory=list)
    validate_: list[ValidateTest] = Field(default_factory=list, alias="validate")  # the lab's tests

    @field_validator("hosts")
    @classmethod
    def _legacy_hosts(cls, value: dict[str, str]) -> dict[str, str]:
        for name, address in value.items():
            _server_name(name)
            if not is_host_address(address):
                raise ValueError(f"server address {address!r} is not allowed: {HOST_ADDRESS_HINT}")
        return value

    @field_validator("servers")
    @classmethod
    def _distinct(cls, value: list[ServerConfig]) -> list[ServerConfig]:
        seen: set[str] = set()
        for server in value:
            if server.name in seen:
                raise ValueError(f"two servers are named {server.name!r}")
            seen.add(server.name)
        return value


class TopologyFile(_Open):
    version: str = ""
    description: str = ""
    platform: str = ""
    devices: dict[str, TopologyDevice]
    links: list[TopologyLink] | None = None
    newtlab: NewtlabSection = Field(default_factory=NewtlabSection)

    @field_validator("devices")
    @classmethod
    def _device_names(cls, value: dict[str, TopologyDevice]) -> dict[str, TopologyDevice]:
        for name in value:
            if not is_safe_name(name):
                raise ValueError(f"device name {name!r} is not allowed: {SAFE_NAME_HINT}")
        return value
