"""The public Python API: ``from newtlab import Lab``.

A ``Lab`` is a spec directory read and planned; its methods are the
operations the CLI offers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .home import homes, lab_dir
from .plan.model import Accel, Plan
from .plan.plan import build_plan, check_lab_name, lab_name_for
from .runtime.portprobe import probe_plan
from .spec.load import Specs, load_specs


@dataclass
class Lab:
    specs: Specs
    plan: Plan

    @classmethod
    def load(cls, spec_dir: str | Path, name: str | None = None, accel: Accel = "kvm") -> Lab:
        """Read ``spec_dir`` and plan the lab (no side effects)."""
        directory = Path(spec_dir)
        specs = load_specs(directory)
        lab = check_lab_name(name or lab_name_for(directory))
        return cls(specs, build_plan(specs, lab, lab_dir(lab), homes(), accel))

    @property
    def name(self) -> str:
        return self.plan.lab

    def port_conflicts(self) -> list[str]:
        """Ports of this machine the lab needs that something else holds."""
        return probe_plan(self.plan)
