"""The argv's PCI layout, checked by QEMU itself: each disk bus with NICs and an extra
device, started paused (``-S``, no guest runs) and asked over QMP (``query-pci``)
where every device sits. The plan's NIC slots must be the NICs' and QEMU must start."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from newtlab.agent import layout
from newtlab.lab import Lab
from newtlab.plan.domain_xml import free_slots
from specfactory import SWITCH_PLATFORM, linked, write_specs

ETHERNET = 0x0200  # PCI class of a NIC


def _plan(tmp_path: Path, disk_driver: str) -> Any:
    platform = {**SWITCH_PLATFORM, "vm_disk_driver": disk_driver, "vm_nic_driver": "e1000",
                "vm_extra_devices": ["virtio-rng-pci"]}  # fmt: skip
    specs = write_specs(tmp_path / "specs", linked(("a:Ethernet0", "b:Ethernet0"),
                        ("a:Ethernet1", "b:Ethernet1")), platforms={"sw": platform})  # fmt: skip
    return Lab.load(specs, accel="tcg").plan.node("a")


def _ask(qmp: Path, command: str) -> Any:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(qmp))
        stream = conn.makefile("rw")
        stream.readline()  # the greeting
        for asked in ("qmp_capabilities", command):
            stream.write(json.dumps({"execute": asked}) + "\n")
            stream.flush()
            answer = json.loads(stream.readline())
        return answer


def _query_pci(argv: list[str], cwd: Path) -> list[dict[str, Any]]:
    qemu = subprocess.Popen([*argv, "-S"], cwd=cwd, stderr=subprocess.PIPE, text=True)
    try:
        qmp = cwd / layout.qmp_socket("a")
        deadline = time.monotonic() + 20
        while not qmp.exists():
            assert qemu.poll() is None, f"QEMU did not start: {qemu.communicate()[1]}"
            assert time.monotonic() < deadline, "no QMP socket"
            time.sleep(0.05)
        try:
            answer = _ask(qmp, "query-pci")
        except (OSError, ValueError):  # QEMU refused the argv after making the socket
            qemu.kill()
            raise AssertionError(f"QEMU did not start: {qemu.communicate()[1]}") from None
        if True:
            devices: list[dict[str, Any]] = []
            for bus in answer["return"]:
                for device in bus["devices"]:
                    devices.append(device)
                    devices += device.get("pci_bridge", {}).get("devices", [])
            return devices
    finally:
        qemu.kill()
        qemu.wait()


@pytest.mark.parametrize("disk_driver", ["virtio", "ide", "sata", "scsi"])
def test_qemu_puts_the_nics_where_the_plan_says(tmp_path: Path, disk_driver: str) -> None:
    node = _plan(tmp_path, disk_driver)
    lab = tmp_path / "lab"
    for sub in layout.HOST_SUBDIRS:
        (lab / sub).mkdir(parents=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(lab / layout.overlay("a")),
                    "64M"], check=True)  # fmt: skip
    devices = _query_pci(node.qemu_argv, lab)
    nics = sorted(f"0000:{d['bus']:02x}:{d['slot']:02x}.0" for d in devices
                  if d["class_info"]["class"] == ETHERNET)  # fmt: skip
    assert nics == sorted(nic.pci for nic in node.nics)
    # What the argv leaves to QEMU (the extra device, the disk or its controller) is where
    # the libvirt rendering puts it explicitly.
    placed = {f"0000:{d['bus']:02x}:{d['slot']:02x}.0" for d in devices}
    others = placed - set(nics) - {f"0000:00:{s:02x}.0" for s in (0, 1, 2)}
    assert others == {slot.address for slot in free_slots(node)}
