"""The shell script that makes a host VM's virtual hosts: pure text from the plan.

It runs as root in the host VM over SSH, after every boot (namespaces live
in ``/run``) and is safe to run again. Per host it makes a network namespace
(iproute2 ``ip netns``) and a persistent UTS namespace (``unshare --uts=FILE``)
named after the host, moves in the host's NICs — found by MAC, so the guest's
own NIC naming does not matter — under the host's interface names, and adds
its addresses and default route. Each host also gets a login named after it
(uid 0, the VM user's password hash and the lab key) whose shell enters both
namespaces, so any SSH client lands inside the host. Every name and value is
quoted for the shell.
"""

from __future__ import annotations

from shlex import quote

from .model import VirtualHostPlan

UTS_DIR = "/run/newtlab/uts"
SHELL_DIR = "/etc/newtlab/hosts"
NIC_WAIT = 50  # × 0.1 s: NICs of a deleted namespace come back to the VM asynchronously

_PRELUDE = f"""set -eu
command -v ip >/dev/null && ip netns list >/dev/null 2>&1 || {{
  echo "newtlab: this image has no iproute2 'ip netns' (virtual hosts need it)" >&2; exit 3; }}
# nic MAC: the name of the interface with that MAC in the VM's own namespace
nic() {{
  n=0
  while [ "$n" -lt {NIC_WAIT} ]; do
    for d in /sys/class/net/*; do
      if [ "$(cat "$d/address" 2>/dev/null)" = "$1" ]; then echo "${{d##*/}}"; return 0; fi
    done
    sleep 0.1; n=$((n + 1))
  done
  echo "newtlab: no NIC with MAC $1 in the VM" >&2; return 1
}}
mkdir -p {UTS_DIR} {SHELL_DIR}
"""


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


def _namespaces(host: VirtualHostPlan) -> list[str]:
    ns, uts = quote(host.namespace), quote(uts_file(host.name))
    lines = [
        f"# {host.name}",
        f"ip netns delete {ns} 2>/dev/null || true",
        f"ip netns add {ns}",
        f"umount {uts} 2>/dev/null || true",
        f": > {uts}",
        f"unshare --uts={uts} hostname {quote(host.name)}",
        f"ip -n {ns} link set lo up",
    ]
    for iface in host.interfaces:
        name = quote(iface.name)
        lines += [
            f"dev=$(nic {quote(iface.mac)})",
            f'ip link set dev "$dev" netns {ns}',
            f'ip -n {ns} link set dev "$dev" name {name}',
            f"ip -n {ns} link set dev {name} up",
        ]
        if iface.address:
            lines.append(f"ip -n {ns} addr add {quote(iface.address)} dev {name}")
    if host.gateway:
        lines.append(f"ip -n {ns} route add default via {quote(host.gateway)}")
    return lines


def _login(host: VirtualHostPlan, vm_user: str, pubkey: str) -> list[str]:
    user, shell = quote(host.name), quote(shell_path(host.name))
    home = quote(f"/home/{host.name}")
    lines = [
        f"cat > {shell} <<'NEWTLAB_SHELL'",
        login_shell(host.name) + "NEWTLAB_SHELL",
        f"chmod 755 {shell}",
        f"grep -qxF {shell} /etc/shells 2>/dev/null || echo {shell} >> /etc/shells",
        f"awk -F: -v u={user} '$1 != u' /etc/passwd > /etc/passwd.newtlab",
        f"echo {user}:x:0:0:virtual host {user}:{home}:{shell} >> /etc/passwd.newtlab",
        "mv /etc/passwd.newtlab /etc/passwd",
        # The VM user's password works for the host too.
        "if [ -f /etc/shadow ]; then",
        f"  hash=$(awk -F: -v u={quote(vm_user)} '$1 == u {{print $2}}' /etc/shadow)",
        f"  awk -F: -v u={user} '$1 != u' /etc/shadow > /etc/shadow.newtlab",
        f'  echo {user}:"$hash":19000:0:99999:7::: >> /etc/shadow.newtlab',
        "  chmod 600 /etc/shadow.newtlab && mv /etc/shadow.newtlab /etc/shadow",
        "fi",
        f"mkdir -p -m 700 {home}/.ssh",
    ]
    if pubkey:
        lines += [
            f"echo {quote(pubkey)} > {home}/.ssh/authorized_keys",
            f"chmod 600 {home}/.ssh/authorized_keys",
        ]
    return lines


def setup_script(hosts: list[VirtualHostPlan], vm_user: str, pubkey: str) -> str:
    """The script (for ``sh -s``) that makes every virtual host of one host VM."""
    lines = [_PRELUDE.rstrip("\n")]
    for host in hosts:
        lines += _namespaces(host) + _login(host, vm_user, pubkey)
    lines.append(f"echo newtlab: {len(hosts)} virtual hosts ready")
    return "\n".join(lines) + "\n"


def as_root(command: str) -> str:
    """Run ``command`` as root: directly if the login is uid 0, else with ``sudo -n``."""
    return f'if [ "$(id -u)" = 0 ]; then {command}; else sudo -n {command}; fi'
