"""`newtlab save` writes configs/<device>.cfg and never loses the file that was there."""

from __future__ import annotations

from pathlib import Path

import pytest

from newtlab.errors import SpecErrors
from newtlab.ops.save import write_config
from newtlab.spec.load import load_specs
from specfactory import HOST_PLATFORM, linked, write_specs


def test_a_different_file_is_kept_numbered_and_the_same_text_is_left(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "r1.cfg").write_text("{% include 'leaf.j2' %}\n")
    (configs / "r1.cfg.~1~").write_text("an older save\n")
    first = write_config(configs, "r1", "hostname r1")
    assert first.changed and first.kept == str(configs / "r1.cfg.~2~")
    assert (configs / "r1.cfg").read_text() == "hostname r1\n"
    assert (configs / "r1.cfg.~2~").read_text() == "{% include 'leaf.j2' %}\n"
    assert (configs / "r1.cfg.~1~").read_text() == "an older save\n"
    again = write_config(configs, "r1", "hostname r1\n")
    assert not again.changed and again.kept == "" and not (configs / "r1.cfg.~3~").exists()
    fresh = write_config(tmp_path / "new", "r2", "x")  # --output into a new directory
    assert fresh.changed and fresh.kept == "" and (tmp_path / "new" / "r2.cfg").exists()


def test_vm_save_needs_a_command_or_a_file(tmp_path: Path) -> None:
    platform = {**HOST_PLATFORM, "vm_save": {}}
    spec = write_specs(tmp_path / "lab", linked(("a:eth1", "b:eth1")),
                       platforms={"sw": platform})  # fmt: skip
    with pytest.raises(SpecErrors, match='vm_save needs "command"'):
        load_specs(spec)
