"""The shell script that makes a host VM's virtual hosts: pure text from the plan.

It runs as root in the host VM over SSH, after every boot (namespaces live
in ``/run``), and is safe to run again. Per host it makes a network namespace
(iproute2 ``ip netns``) and a persistent UTS namespace (``unshare --uts=FILE``)
named after the host, moves in the host's NICs — found by MAC, so the guest's
own NIC naming does not matter — under the host's interface names, and adds
its addresses and default route. Each host also gets a login named after it
(uid 0, the VM user's password hash and the lab key) whose shell enters both
namespaces, so any SSH client lands inside the host.

Every name and value is quoted for the shell. Under TCG each process the
guest starts costs ~40 ms, so ``ip`` commands go in batches and files are
written with shell built-ins: the process count grows by two per host.
"""

from __future__ import annotations

from collections.abc import Iterable
from shlex import quote

from .model import VirtualHostPlan

UTS_DIR = "/run/newtlab/uts"
SHELL_DIR = "/etc/newtlab/hosts"
NIC_WAIT = 50  # × 0.1 s: NICs of a deleted namespace come back to the VM asynchronously

_PRELUDE = f"""set -eu
command -v ip >/dev/null && ip netns list >/dev/null 2>&1 || {{
  echo "newtlab: this image has no iproute2 'ip netns' (virtual hosts need it)" >&2; exit 3; }}
# nic MAC: the name of the VM's interface with that MAC (built-ins only)
nic() {{
  n=0
  while [ "$n" -lt {NIC_WAIT} ]; do
    for d in /sys/class/net/*; do
      read -r a < "$d/address" 2>/dev/null || continue
      if [ "$a" = "$1" ]; then echo "${{d##*/}}"; return 0; fi
    done
    sleep 0.1; n=$((n + 1))
  done
  echo "newtlab: no NIC with MAC $1 in the VM" >&2; return 1
}}
# listed LINE FILE: whether FILE has that line (built-ins only)
listed() {{
  while IFS= read -r l; do [ "$l" = "$1" ] && return 0; done < "$2"; return 1
}}"""


def uts_file(host: str) -> str:
    return f"{UTS_DIR}/{host}"


def shell_path(host: str) -> str:
    return f"{SHELL_DIR}/{host}.sh"


def login_shell(host: str) -> str:
    """The login shell of user ``host``: a shell inside the host's namespaces."""
    return (
        "#!/bin/sh\n"
        f"# Virtual host {host}: a shell in its network and UTS namespaces (made by newtlab).\n"
        '[ "$#" -gt 0 ] || set -- -l\n'
        f'exec ip netns exec {quote(host)} nsenter --uts={quote(uts_file(host))} /bin/sh "$@"\n'
    )


def _batch(lines: Iterable[str], ip: str = "ip") -> str:
    """One ``ip -batch`` process for many commands (each line a shell word)."""
    return f"printf '%s\\n' {' '.join(lines)} | {ip} -batch -"


def _nic_var(host: int, iface: int) -> str:
    return f"nic_{host}_{iface}"


def _namespaces(hosts: list[VirtualHostPlan]) -> list[str]:
    names = [quote(h.namespace) for h in hosts]
    lines = [
        "# Namespaces, made fresh: a rerun gets the hosts' NICs back first.",
        _batch((quote(f"netns delete {h.namespace}") for h in hosts), "ip -force")
        + " 2>/dev/null || true",
        _batch(quote(f"netns add {h.namespace}") for h in hosts),
        f"umount {' '.join(quote(uts_file(h.name)) for h in hosts)} 2>/dev/null || true",
    ]
    for host, ns in zip(hosts, names, strict=True):
        uts = quote(uts_file(host.name))
        lines += [f": > {uts}", f"unshare --uts={uts} hostname {ns}"]
    moves = []
    for h, host in enumerate(hosts):
        for i, iface in enumerate(host.interfaces):
            lines.append(f"{_nic_var(h, i)}=$(nic {quote(iface.mac)})")
            moves.append(f"'link set dev '\"${_nic_var(h, i)}\"{quote(' netns ' + host.namespace)}")
    if moves:
        lines.append(_batch(moves))
    for h, host in enumerate(hosts):
        inside = [quote("link set lo up")]
        for i, iface in enumerate(host.interfaces):
            inside += [
                f"'link set dev '\"${_nic_var(h, i)}\"{quote(' name ' + iface.name)}",
                quote(f"link set dev {iface.name} up"),
            ]
            if iface.address:
                inside.append(quote(f"addr add {iface.address} dev {iface.name}"))
        if host.gateway:
            inside.append(quote(f"route add default via {host.gateway}"))
        lines.append(_batch(inside, f"ip -n {quote(host.namespace)}"))
    return lines


def _logins(hosts: list[VirtualHostPlan], vm_user: str, pubkey: str) -> list[str]:
    users = [quote(h.name) for h in hosts]
    shells = [quote(shell_path(h.name)) for h in hosts]
    homes = [quote(f"/home/{h.name}") for h in hosts]
    drop = quote(" " + " ".join(h.name for h in hosts) + " ")
    keep_others = f'awk -F: -v drop={drop} \'index(drop, " " $1 " ") == 0\''
    lines = ["# Logins: user = host name, its shell enters the host's namespaces."]
    for host, shell in zip(hosts, shells, strict=True):
        lines.append(f"printf '%s' {quote(login_shell(host.name))} > {shell}")
    lines += [
        f"chmod 755 {' '.join(shells)}",
        "[ -f /etc/shells ] || echo /bin/sh > /etc/shells",
        *(f"listed {s} /etc/shells || echo {s} >> /etc/shells" for s in shells),
        f"{keep_others} /etc/passwd > /etc/passwd.newtlab",
        *(
            f"echo {u}:x:0:0:virtual host {u}:{home}:{s} >> /etc/passwd.newtlab"
            for u, home, s in zip(users, homes, shells, strict=True)
        ),
        "mv /etc/passwd.newtlab /etc/passwd",
        "if [ -f /etc/shadow ]; then  # the VM user's password works for the hosts too",
        f"  hash=$(awk -F: -v u={quote(vm_user)} '$1 == u {{print $2}}' /etc/shadow)",
        f"  {keep_others} /etc/shadow > /etc/shadow.newtlab",
        *(f'  echo {u}:"$hash":19000:0:99999:7::: >> /etc/shadow.newtlab' for u in users),
        "  chmod 600 /etc/shadow.newtlab && mv /etc/shadow.newtlab /etc/shadow",
        "fi",
        f"mkdir -p -m 700 {' '.join(f'{home}/.ssh' for home in homes)}",
    ]
    if pubkey:
        keys = [f"{home}/.ssh/authorized_keys" for home in homes]
        lines += [f"echo {quote(pubkey)} > {key}" for key in keys]
        lines.append(f"chmod 600 {' '.join(keys)}")
    return lines


def setup_script(hosts: list[VirtualHostPlan], vm_user: str, pubkey: str) -> str:
    """The script (for ``sh -s``) that makes every virtual host of one host VM."""
    lines = [_PRELUDE, f"mkdir -p {UTS_DIR} {SHELL_DIR}"]
    if hosts:
        lines += _namespaces(hosts) + _logins(hosts, vm_user, pubkey)
    lines.append(f"echo newtlab: {len(hosts)} virtual hosts ready")
    return "\n".join(lines) + "\n"


def as_root(command: str) -> str:
    """Run ``command`` as root: directly if the login is uid 0, else with ``sudo -n``."""
    return f'if [ "$(id -u)" = 0 ]; then {command}; else sudo -n {command}; fi'
