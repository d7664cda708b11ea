"""Inventories of a deployed lab for other tools: Ansible's, and a plain JSON list.

The Ansible form is a YAML-plugin inventory written as JSON (JSON is YAML;
save it as ``*.yml`` or ``*.json``): every node and virtual host under
``all``, grouped by device type and by server, with the address, port,
user and key newtlab uses, and for a NOS its ``network_os``, the
``network_cli`` connection and its platform's password.
"""

from __future__ import annotations

import re
from typing import Any

from ..plan.model import LOCAL_HOST
from ..state import LabState
from .ssh_config import targets

SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"


def entries(state: LabState) -> list[dict[str, Any]]:
    """One row per node and virtual host: how to reach it, what it is, where it runs."""
    pooled = any(h.name != LOCAL_HOST for h in state.plan.hosts)
    rows = []
    for target in targets(state):
        node = target.node
        rows.append({
            "name": target.vhost.name if target.vhost else node.name,
            "device_type": "host" if target.vhost else node.device_type,
            "platform": node.platform,
            "network_os": "" if target.vhost else node.network_os,
            "address": node.ssh_bind,
            "port": node.ssh_port,
            "user": target.user,
            "password": target.password,
            "key": state.ssh_key_path,
            "server": node.host if pooled else "",
            "vm": node.name if target.vhost else "",
        })  # fmt: skip
    return rows


def _group(name: str) -> str:
    """An Ansible group name: letters, digits and underscores."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def ansible_inventory(state: LabState) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    for row in entries(state):
        hostvars: dict[str, Any] = {
            "ansible_host": row["address"],
            "ansible_port": row["port"],
            "ansible_user": row["user"],
            "ansible_ssh_common_args": SSH_ARGS,
        }
        if row["key"]:
            hostvars["ansible_ssh_private_key_file"] = row["key"]
        if row["network_os"]:  # a NOS CLI: the platform's login (the key may not be there)
            hostvars["ansible_connection"] = "ansible.netcommon.network_cli"
            hostvars["ansible_network_os"] = row["network_os"]
            if row["password"]:
                hostvars["ansible_password"] = row["password"]
        else:  # a Linux node: the lab's key, as newtlab ssh uses it
            hostvars["ansible_connection"] = "ssh"
        by_type = groups.setdefault(_group(row["device_type"]), {"hosts": {}})
        by_type["hosts"][row["name"]] = hostvars
        if row["server"]:
            by_server = groups.setdefault(_group(f"server_{row['server']}"), {"hosts": {}})
            by_server["hosts"][row["name"]] = {}
    return {"all": {"vars": {"newtlab_lab": state.name}, "children": groups}}
