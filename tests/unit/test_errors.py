"""How a list of failures reads: each one's own lines stay beneath it."""

from __future__ import annotations

from newtlab.errors import listing


def test_listing_indents_each_items_own_lines_beneath_it() -> None:
    text = listing("deploy failed", ["v0: stalled; its last lines:\n  SYSLINUX 6.04", "v1: gone"])
    assert text.splitlines() == [
        "deploy failed:",
        "  v0: stalled; its last lines:",
        "      SYSLINUX 6.04",
        "  v1: gone",
    ]
    items = [line for line in text.splitlines() if line.startswith("  ") and line[2] != " "]
    assert [line.split(":")[0].strip() for line in items] == ["v0", "v1"]
