"""Link impairments as users write them: units, merging, and topology.json's newtlab.links."""

from __future__ import annotations

from pathlib import Path

import pytest

from newtlab.errors import SpecErrors
from newtlab.lab import Lab
from newtlab.plan.impairments import ImpairmentError, impairment, with_impairment
from newtlab.plan.model import LinkSettings
from specfactory import linked, write_specs


def test_units_convert_to_the_bridges() -> None:
    got = impairment({"delay": "20ms", "jitter": "500us", "loss": "0.5%", "rate": "1gbit",
                      "corrupt": "0.1%", "duplicate": "1%"})  # fmt: skip
    assert got == pytest.approx({"delay": 0.02, "jitter": 0.0005, "loss": 0.005,
                                 "rate": 10**9, "corrupt": 0.001, "duplicate": 0.01})  # fmt: skip
    assert impairment({"delay": "1.5s", "rate": "512kbit"}) == {"delay": 1.5, "rate": 512000}


@pytest.mark.parametrize(("field", "value", "says"), [
    ("delay", "fast", "not a duration"), ("loss", "0.5", "must be a percentage"),
    ("loss", "150%", "between 0% and 100%"), ("rate", "10mbps", "ambiguous"),
    ("rate", "1kbit", "below 8kbit"), ("lag", "1ms", "not an impairment"),
])  # fmt: skip
def test_bad_values_say_what_is_wanted(field: str, value: str, says: str) -> None:
    with pytest.raises(ImpairmentError, match=says):
        impairment({field: value})


def test_settings_merge_per_direction_and_zero_removes() -> None:
    start = with_impairment(LinkSettings(), "a", "both", {"delay": 0.02})
    assert start.a == start.z == {"delay": 0.02}
    out = with_impairment(start, "z", "out", {"loss": 0.1})  # what the Z end sends
    assert out.z == {"delay": 0.02, "loss": 0.1} and out.a == {"delay": 0.02}
    assert with_impairment(out, "z", "out", {"loss": 0.0}).z == {"delay": 0.02}
    assert with_impairment(start, "a", "in", {"jitter": 0.005}).z == {
        "delay": 0.02,
        "jitter": 0.005,
    }
    with pytest.raises(ImpairmentError, match="give a delay too"):
        with_impairment(LinkSettings(), "a", "both", {"jitter": 0.005})


def test_topology_links_apply_from_deploy_and_errors_name_the_field(tmp_path: Path) -> None:
    devices = linked(("a:Ethernet0", "b:Ethernet0"))
    wanted = {"b:Ethernet0": {"delay": "40ms", "direction": "in"}, "a:Ethernet0": {"down": True}}
    spec = write_specs(tmp_path / "ok", devices, newtlab={"links": wanted})
    (link,) = Lab.load(spec).plan.links
    assert link.settings.down and link.settings.z == {} and link.settings.a == {"delay": 0.04}
    bad = write_specs(tmp_path / "bad", devices, newtlab={"links": {
        "a:Ethernet0": {"loss": "5"}, "c:Ethernet9": {"delay": "1ms"}}})  # fmt: skip
    with pytest.raises(SpecErrors) as caught:
        Lab.load(bad)
    fields = sorted(e.path for e in caught.value.errors)
    assert fields == ["newtlab.links.a:Ethernet0.loss", "newtlab.links.c:Ethernet9"]
