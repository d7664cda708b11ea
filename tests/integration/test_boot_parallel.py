"""`deploy --boot-parallel N`: at most N VMs boot at once on a host."""

from __future__ import annotations

import itertools

import pytest
from labkit import SpecDir, run_cli

from newtlab.state import load_state

pytestmark = pytest.mark.integration


def test_one_at_a_time_boots_each_vm_after_the_last_is_ready(make_lab) -> None:  # type: ignore[no-untyped-def]
    spec: SpecDir = make_lab()
    result = run_cli("deploy", "-S", str(spec.path), "--accel", "tcg", "--boot-parallel", "1")
    assert result.returncode == 0, result.stderr
    nodes = sorted(load_state(spec.lab).nodes.values(), key=lambda n: n.started_at)
    assert len(nodes) == 3
    for before, after in itertools.pairwise(nodes):
        assert before.boot_seconds is not None
        ready = before.started_at + before.boot_seconds
        assert after.started_at >= ready - 0.1  # started once the one before was ready
