"""The ``Host`` contract, with its VM engine and datapath, checked over every transport.

Only the ``Host`` interface is used: what these tests show holds wherever a
lab runs, on this machine or on a server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hostkit import HostLab, run

from newtlab.errors import RuntimeFailure
from newtlab.plan.model import LinkSettings
from newtlab.plan.ports import collect_ports
from newtlab.runtime.host import Host
from newtlab.runtime.processes import LabProcess

pytestmark = pytest.mark.integration


def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> bool:
    async def poll() -> bool:
        deadline = time.monotonic() + timeout
        while not await check():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    return run(poll())


def backing_file(qcow2: bytes) -> str:
    """The backing file named in a qcow2 header."""
    offset, size = struct.unpack_from(">QI", qcow2, 8)
    return qcow2[offset : offset + size].decode()


def test_run_reports_status_and_output(host: Host) -> None:
    result = run(host.run(["sh", "-c", "echo out; echo err >&2; exit 3"]))
    assert result.returncode == 3 and result.output.split() == ["out", "err"]
    assert run(host.run(["newtlab-no-such-command"])).returncode == 127


def test_images_overlays_and_lab_files(host: Host, make_lab: Callable[..., HostLab]) -> None:
    lab = make_lab()
    assert run(host.check_image(lab.base)) is None
    missing = run(host.check_image(lab.base + ".missing"))
    assert missing is not None and missing.startswith(f"vm_image not found: {lab.base}.missing")
    text = lab.base + ".txt"
    assert run(host.run(["sh", "-c", f"echo not an image > {text}"])).returncode == 0
    wrong = run(host.check_image(text))
    run(host.run(["rm", "-f", text]))
    assert wrong is not None and "is not a qcow2 image" in wrong

    run(host.create_overlay(lab.name, "a", lab.base))
    overlay = run(host.read_file(lab.name, "disks/a.qcow2"))
    assert overlay is not None and overlay[:4] == b"QFI\xfb"
    assert backing_file(overlay) == lab.base  # absolute: the base is shared, never copied
    _check_chains_and_digests(host, lab)
    assert run(host.read_file(lab.name, "disks/a.qcow2", offset=len(overlay))) == b""
    assert run(host.read_file(lab.name, "logs/none.log")) is None
    run(host.remove_lab(lab.name))
    assert run(host.read_file(lab.name, "disks/a.qcow2")) is None


def _check_chains_and_digests(host: Host, lab: HostLab) -> None:
    """A base backed by a lab's overlay, a broken chain, a digest: all said before use."""
    home = run(host.run(["sh", "-c", 'echo "${NEWTLAB_HOME:-$HOME/.newtlab}"'])).output.strip()
    path = f"{home}/labs/{lab.name}/disks/a.qcow2"
    derived = lab.base + ".derived.qcow2"
    orphan = lab.base + ".orphan.qcow2"
    for argv in (
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", path, "-F", "qcow2", derived],
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            lab.base + ".gone",
            "-F",
            "qcow2",
            "-u",
            orphan,
            "8M",
        ],
    ):
        assert run(host.run(argv)).returncode == 0
    in_lab = run(host.check_image(derived))
    assert in_lab is not None and "a lab's overlay" in in_lab and "qemu-img convert" in in_lab
    broken = run(host.check_image(orphan))
    assert broken is not None and "qemu-img cannot read" in broken
    digest = run(host.run(["sha256sum", lab.base])).output.split()[0]
    assert run(host.check_image(lab.base, digest)) is None
    assert run(host.check_image(lab.base, digest.upper())) is None
    wrong = run(host.check_image(lab.base, "0" * 64))
    assert wrong is not None and f"has SHA-256 {digest}, not the vm_image_sha256" in wrong
    run(host.run(["rm", "-f", derived, orphan]))


def test_the_snapshot_store_keeps_a_copy_that_outlives_the_lab(
    host: Host, make_lab: Callable[..., HostLab]
) -> None:
    """A state saved inside an overlay is kept in the host's store (other states trimmed from
    the copy), survives the lab's removal, comes back as the overlay, and goes on remove."""
    lab = make_lab()
    run(host.create_overlay(lab.name, "a", lab.base))
    home = run(host.run(["sh", "-c", 'echo "${NEWTLAB_HOME:-$HOME/.newtlab}"'])).output.strip()
    overlay = f"{home}/labs/{lab.name}/disks/a.qcow2"
    for tag in ("older", "s1"):  # disk-only states stand in for a VM's (the copy is the same)
        assert run(host.run(["qemu-img", "snapshot", "-c", tag, overlay])).returncode == 0
    assert run(host.snapshot_tags(lab.name, "a")) == ["older", "s1"]
    run(host.keep_snapshot(lab.name, "s1", ["a"]))
    trimmed = run(host.trim_snapshot(lab.name, "s1"))
    assert trimmed["a"]["base"] == lab.base and trimmed["a"]["bytes"] > 0
    base_size = int(run(host.run(["stat", "-c", "%s", lab.base])).output)
    assert trimmed["a"]["base_bytes"] == base_size
    assert run(host.snapshot_parts()) == [
        {"lab": lab.name, "name": "s1", "nodes": ["a"], "bytes": trimmed["a"]["bytes"]}
    ]
    run(host.remove_lab(lab.name))  # destroy: the store stays
    run(host.prepare_lab(lab.name))
    with pytest.raises(RuntimeFailure, match="is not the one snapshot s1 was saved over"):
        run(host.stage_snapshot(lab.name, "s1", "a", base_size + 1, trimmed["a"]["base_mtime_ns"]))
    run(host.stage_snapshot(lab.name, "s1", "a", base_size, trimmed["a"]["base_mtime_ns"]))
    assert run(host.snapshot_tags(lab.name, "a")) == ["s1"]  # the copy, trimmed
    run(host.delete_snapshot_tag(lab.name, "a", "s1"))
    assert run(host.snapshot_tags(lab.name, "a")) == []
    run(host.remove_snapshot(lab.name, "s1"))
    assert run(host.snapshot_parts()) == []


def test_a_base_image_is_provided_once(host: Host, tmp_path: Path) -> None:
    """An image of this machine is on the host after (a server gets a copy, sent once)."""
    image = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "8M"], check=True)
    first: list[str] = []
    path = run(host.provide_image(str(image), True, first.append))
    assert run(host.check_image(path)) is None
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    assert run(host.run(["sha256sum", path])).output.split()[0] == digest
    again: list[str] = []
    assert run(host.provide_image(str(image), False, again.append)) == path
    assert again == []  # nothing sent the second time
    if path != str(image):  # a copy: made under a temporary name, kept by content
        assert first[-1].endswith("kept for later deploys") and digest[:16] in path
    with pytest.raises(RuntimeFailure, match=r"none\.qcow2 not found"):
        run(host.provide_image(str(tmp_path / "none.qcow2"), True, first.append))


def test_vm_lifecycle_with_identity_checks(host: Host, make_lab: Callable[..., HostLab]) -> None:
    lab = make_lab()
    a = lab.node("a")
    run(host.create_overlay(lab.name, "a", lab.base))
    pid = run(host.engine.start(lab.name, a))
    assert pid > 0
    assert run(host.engine.running(lab.name, "a", pid))
    assert not run(host.engine.running(lab.name, "b", pid))  # alive, but not b's QEMU
    assert LabProcess(pid, "qemu", "a", lab.name) in run(host.processes(lab.name))
    assert run(host.engine.processes(lab.name)) == [LabProcess(pid, "qemu", "a", lab.name)]
    assert run(host.read_file(lab.name, "logs/a.log")) is not None

    # A PID that is not this VM's QEMU is never signalled: here, the bridge's supervisor.
    supervisor = run(host.datapath.start(lab.name, lab.plan.bridges["local"], {}))
    assert run(host.engine.stop(lab.name, "a", supervisor, 0))  # "not ours": nothing to stop
    assert LabProcess(supervisor, "supervisor", "", lab.name) in run(host.processes(lab.name))

    assert run(host.engine.stop(lab.name, "a", pid, 0))
    assert not run(host.engine.running(lab.name, "a", pid))
    assert all(p.kind != "qemu" for p in run(host.processes(lab.name)))


def test_a_vm_that_cannot_start_says_why(host: Host, make_lab: Callable[..., HostLab]) -> None:
    lab = make_lab(vm_extra_devices=["newtlab-no-such-device"])
    run(host.create_overlay(lab.name, "a", lab.base))
    with pytest.raises(RuntimeFailure, match="QEMU for a exited") as failure:
        run(host.engine.start(lab.name, lab.node("a")))
    assert "newtlab-no-such-device" in str(failure.value)
    assert run(host.processes(lab.name)) == []


def test_ports_in_use_are_found_and_reachable(host: Host, make_lab: Callable[..., HostLab]) -> None:
    lab = make_lab()
    a = lab.node("a")
    uses = [u for u in collect_ports(lab.plan) if u.node == "a"]
    assert run(host.probe_ports(uses)) == []
    run(host.create_overlay(lab.name, "a", lab.base))
    pid = run(host.engine.start(lab.name, a))
    # Of the VM only its SSH forward is a TCP port: console and NICs are Unix sockets.
    assert a.console_port is None and a.nics[1].listen == "qemu/a.nic1"
    assert run(host.probe_ports(uses)) == [f"a SSH: port {a.ssh_port} in use"]

    async def connect() -> bool:  # the console's Unix socket, from this machine
        async with host.reach_console(lab.name, a) as path:
            assert isinstance(path, str)
            _, writer = await asyncio.open_unix_connection(path)
            writer.close()
            return True

    assert run(connect())
    run(host.engine.stop(lab.name, "a", pid, 0))
    assert run(host.probe_ports(uses)) == []


def test_bridge_dials_the_vms_and_comes_back_after_kill_9(
    host: Host, make_lab: Callable[..., HostLab]
) -> None:
    lab = make_lab()
    for node in ("a", "b"):
        run(host.create_overlay(lab.name, node, lab.base))
        run(host.engine.start(lab.name, lab.node(node)))
    supervisor = run(host.datapath.start(lab.name, lab.plan.bridges["local"], {}))

    async def connected() -> bool:
        stats = (await host.datapath.survey(lab.name)).stats
        return stats is not None and stats["links"][0]["connected"]

    assert eventually(connected)  # both QEMU NICs listen; the bridge dialled them
    kinds = {p.kind: p.pid for p in run(host.processes(lab.name)) if p.kind != "qemu"}
    assert kinds["supervisor"] == supervisor and kinds["bridge"] != supervisor
    view = run(host.datapath.survey(lab.name))  # processes and stats at once
    stats = view.stats
    assert stats is not None and stats["pid"] == kinds["bridge"] and stats["restarts"] == 0
    assert view.condition == "up"
    assert sorted(p.pid for p in view.processes) == sorted(kinds.values())

    assert run(host.run(["kill", "-9", str(kinds["bridge"])])).returncode == 0

    async def back() -> bool:
        stats = (await host.datapath.survey(lab.name)).stats
        return stats is not None and stats["restarts"] == 1 and stats["links"][0]["connected"]

    assert eventually(back, timeout=5)
    assert run(host.datapath.stop(lab.name)) == []
    assert [p.kind for p in run(host.processes(lab.name))] == ["qemu", "qemu"]
    assert run(host.datapath.survey(lab.name)).stats is None
    assert run(host.datapath.survey(lab.name)).condition == "down"


def test_a_bridge_that_cannot_start_says_why(host: Host, make_lab: Callable[..., HostLab]) -> None:
    lab = make_lab()
    run(host.create_overlay(lab.name, "a", lab.base))
    a = lab.node("a")
    run(host.engine.start(lab.name, a))
    bridge = lab.plan.bridges["local"]
    taken = f"{a.ssh_bind}:{a.ssh_port}"  # a listening side where QEMU's SSH forward is
    link = bridge.links[0]
    z = link.z.model_copy(update={"dial": "", "listen": taken})
    bridge = bridge.model_copy(update={"links": [link.model_copy(update={"z": z})]})
    with pytest.raises(RuntimeFailure, match=f"cannot listen on {taken}"):
        run(host.datapath.start(lab.name, bridge, {}))
    assert all(p.kind == "qemu" for p in run(host.processes(lab.name)))


def test_resources_are_this_machines(host: Host) -> None:
    have = run(host.resources())
    meminfo = run(host.run(["sh", "-c", "grep MemAvailable /proc/meminfo"])).output.split()
    assert abs(have.memory_available_mib - int(meminfo[1]) // 1024) < 512  # it moves a little
    assert have.cpus == int(run(host.run(["nproc"])).output) and have.disk_free_mib > 0


def test_this_host_has_what_labs_need(host: Host) -> None:
    assert run(host.check_machine()) == []
    needs = [("/nonexistent/OVMF.fd", "ovmf"), ("/bin/sh", "dash")]
    lines = run(host.check_machine(needs))
    assert len(lines) == 1 and "/nonexistent/OVMF.fd not found — install ovmf" in lines[0]


def test_accelerators_as_asked(host: Host) -> None:
    assert run(host.engine.choose_accel("tcg")) == ("tcg", "")
    assert run(host.engine.choose_accel("kvm")) == ("kvm", "")
    chosen, _ = run(host.engine.choose_accel("auto"))
    assert chosen in ("kvm", "tcg")


def test_links_are_shaped_and_captured_and_keep_their_settings(
    host: Host, make_lab: Callable[..., HostLab]
) -> None:
    """The datapath's control, over the transport (a server's through its SSH connection):
    settings outlive the bridge's own restart; a capture is a pcap stream."""
    lab = make_lab()
    (link,) = lab.plan.links
    run(host.datapath.start(lab.name, lab.plan.bridges["local"], {}))  # no VM: it redials
    settings = LinkSettings(down=True, a={"delay": 0.02})
    run(host.datapath.shape(lab.name, link.a, settings))
    kept = run(host.read_file(lab.name, "links.json"))
    assert kept is not None and json.loads(kept)[link.name] == settings.bridge()
    bridge = next(p.pid for p in run(host.datapath.processes(lab.name)) if p.kind == "bridge")
    assert run(host.run(["kill", "-9", str(bridge)])).returncode == 0

    async def back() -> bool:
        view = await host.datapath.survey(lab.name)
        return view.condition == "up" and (view.stats or {}).get("restarts") == 1

    assert eventually(back, timeout=5)
    captured: list[bytes] = []
    run(host.datapath.capture(lab.name, link.a, captured.append, duration=0.5))
    assert b"".join(captured)[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")  # pcap magic
    with pytest.raises(RuntimeFailure, match="no link"):
        run(host.datapath.shape(lab.name, "nowhere:eth9", settings))
    assert run(host.datapath.stop(lab.name)) == []
    with pytest.raises(RuntimeFailure, match="does not answer on its control socket"):
        run(host.datapath.shape(lab.name, link.a, settings))
