from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own NEWTLAB_HOME so no test sees another's labs."""
    home = tmp_path_factory.mktemp("newtlab-home")
    monkeypatch.setenv("NEWTLAB_HOME", str(home))
    return home


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from what the code produces now (check the diff first)",
    )


# The modules that take longest (two workers, TCG), first. With `--dist loadfile` a free
# worker takes the next module in this order: started last, one of them ran on alone at the
# end of the run while the other worker had nothing left to do.
LONGEST_FIRST = tuple(
    f"tests/integration/test_{name}.py"
    for name in ("servers", "sonic_patches", "virtual_hosts", "clos", "snapshots", "links",
                 "libvirt", "libvirt_servers", "readme_tour")
)  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath

    def rank(item: pytest.Item) -> int:
        path = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: a module's tests keep their order
