"""Lab snapshots and saved configurations on real VMs.

line3's r1 keeps its running configuration as a boot script (its platform's ``vm_save``
names the file): ``newtlab save`` writes it into configs/, keeping the template, and
the next deploy boots from it. That lab is then saved, changed, restored in place (the
same QEMU processes), destroyed and deployed again from the snapshot; frames the links
still held at the restore never reach the restored guests; a spec that changed a VM is
refused."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from labkit import SpecDir, close_ssh, ping, run_cli, ssh, status

from newtlab.state import load_state

pytestmark = pytest.mark.integration

HELD = "3s"  # r1:eth1's delay when saved: frames wait that long in the bridge


def _pids() -> dict[str, int]:
    return {n["name"]: n["pid"] for n in status()["nodes"]}


def _echoes_received(node: str) -> int:
    """ICMP echo requests the node's kernel has taken in (/proc/net/snmp, Icmp InEchos)."""
    lines = [line.split() for line in ssh(node, "cat /proc/net/snmp").splitlines()
             if line.startswith("Icmp:")]  # fmt: skip
    return int(lines[1][lines[0].index("InEchos")])


def _state(node: str) -> str:
    return ssh(node, "cat /root/marker; ip -br addr show dev lo").strip()


def _cli_ok(*args: str, timeout: float = 300) -> str:
    result = run_cli(*args, timeout=timeout)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def _more_memory(spec: SpecDir) -> str:
    """r1..r3's platform given more memory; the file's text before."""
    path = spec.path / "platforms.json"
    before = path.read_text()
    data = json.loads(before)
    data["platforms"]["newtlab-host"]["vm_memory"] = 256
    path.write_text(json.dumps(data, indent=2))
    return before


def _keeps_its_config(spec: SpecDir) -> None:
    path = spec.path / "platforms.json"
    data = json.loads(path.read_text())
    data["platforms"]["newtlab-host"]["vm_save"] = {"file": "/root/running.sh"}
    path.write_text(json.dumps(data, indent=2))


def _save_then_deploy_from_it(spec: SpecDir) -> None:
    """r1's running configuration saved into configs/, then the lab deployed again."""
    running = load_state(spec.lab).plan.node("r1").startup_config
    assert running is not None
    script = running.content + "echo booted-from-save > /root/booted\n"
    ssh("r1", f"cat > /root/running.sh <<'EOF'\n{script}EOF")
    template = (spec.path / "configs" / "r1.cfg").read_text()
    [saved] = json.loads(_cli_ok("save", "r1", "--json"))
    assert saved["path"] == str(spec.path / "configs" / "r1.cfg") and saved["changed"]
    assert Path(saved["kept"]).name == "r1.cfg.~1~"
    assert Path(saved["kept"]).read_text() == template  # nothing the user wrote is lost
    assert (spec.path / "configs" / "r1.cfg").read_text() == script
    [again] = json.loads(_cli_ok("save", spec.lab, "r1", "--json"))
    assert not again["changed"] and not (spec.path / "configs" / "r1.cfg.~2~").exists()
    _cli_ok("destroy", spec.lab)
    close_ssh()
    _cli_ok("deploy", "-S", str(spec.path), "--accel", "tcg", timeout=600)
    assert ssh("r1", "cat /root/booted").strip() == "booted-from-save"


def test_a_snapshot_comes_back_in_place_and_after_destroy(
    make_lab: Callable[..., SpecDir], newtlab_home: Path
) -> None:
    spec = make_lab(configs=True)
    _keeps_its_config(spec)
    _cli_ok("deploy", "-S", str(spec.path), "--accel", "tcg", timeout=600)
    _save_then_deploy_from_it(spec)
    ping("r1", "10.0.23.3")  # r1 → r2 → r3: every link carries
    ssh("r1", "echo saved > /root/marker; ip addr add 10.9.9.1/32 dev lo")
    _cli_ok("link", "set", "r1:eth1", "--delay", HELD)
    echoes = _echoes_received("r2")
    pids = _pids()

    saved = json.loads(_cli_ok("snapshot", "save", "s1", "--json"))
    assert saved["vms"] == ["r1", "r2", "r3"] and saved["bytes"] > 3 * 10 * 2**20
    assert 0 < saved["paused_seconds"] < 60
    assert _pids() == pids  # saved while running: nothing restarted

    # After the save: a changed guest, and pings that the bridge holds for 3 s.
    ssh("r1", "echo changed > /root/marker; ip addr del 10.9.9.1/32 dev lo")
    ssh("r1", "ping -c 5 -i 0.2 10.0.12.2 >/dev/null 2>&1 &")
    restored = json.loads(_cli_ok("snapshot", "restore", "s1", "--json"))
    close_ssh()  # connections open at the restore are the guests' past: they hang
    assert {n["status"] for n in restored["nodes"]} == {"running"}
    assert _pids() == pids  # in place: the same QEMU processes
    assert _state("r1").startswith("saved") and "10.9.9.1/32" in _state("r1")
    time.sleep(4)  # longer than the delay: a held frame would have arrived by now
    assert _echoes_received("r2") == echoes  # none of the pings sent after the save
    links = json.loads(_cli_ok("link", "show", "--json"))
    assert links["r1:eth1--r2:eth1"]["a"]["delay"] == 3.0  # the settings as saved
    _cli_ok("link", "reset", "r1:eth1")
    ping("r1", "10.0.23.3")
    ping("r3", "10.0.12.1")
    skew = abs(int(ssh("r2", "date +%s")) - time.time())
    assert skew < 15, f"r2's clock is {skew:.0f} s off after the restore"

    # Destroyed, the snapshot stays; a spec whose VMs changed is refused before anything.
    _cli_ok("destroy", spec.lab)
    close_ssh()
    assert [s["name"] for s in json.loads(_cli_ok("snapshot", "list", "--json"))] == ["s1"]
    before = _more_memory(spec)
    refused = run_cli("deploy", "-S", str(spec.path), "--from-snapshot", "s1")
    assert refused.returncode == 1
    assert "r1: its VM is not the one saved" in refused.stderr, refused.stderr
    assert not (newtlab_home / "labs" / spec.lab / "state.json").exists()
    (spec.path / "platforms.json").write_text(before)

    _cli_ok("deploy", "-S", str(spec.path), "--from-snapshot", "s1", timeout=600)
    assert _state("r1").startswith("saved") and "10.9.9.1/32" in _state("r1")
    assert json.loads(_cli_ok("link", "show", "--json"))["r1:eth1--r2:eth1"]["a"]["delay"] == 3.0
    _cli_ok("link", "reset", "r1:eth1")
    ping("r1", "10.0.23.3")

    _cli_ok("snapshot", "delete", "s1", spec.lab)
    assert json.loads(_cli_ok("snapshot", "list", "--json")) == []
    assert not list((newtlab_home / "snapshots").rglob("*.qcow2"))
