"""newtlab's platform catalog: one ``platforms.json`` entry per file, as package data.

A spec's platform may say ``"base": "<name>"``: it starts from that entry
and its own fields replace the entry's (whole top-level fields). Each entry
also says where its values come from (``source``) and whether a real image
was booted with it (``verified``). newtlab's own host image is the entry
``newtlab-host`` (``newtlab/image/platform.json``), its router image the
entry ``newtlab-router`` (``newtlab/image/router-platform.json``, based on
the host's).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

HOST_IMAGE_ENTRY = "newtlab-host"
ROUTER_IMAGE_ENTRY = "newtlab-router"


@cache
def catalog() -> dict[str, dict[str, Any]]:
    """Every entry by name, sorted by name."""
    entries: dict[str, dict[str, Any]] = {}
    for item in resources.files(__package__).iterdir():
        if item.name.endswith(".json"):
            entries[item.name.removesuffix(".json")] = json.loads(item.read_text())
    images = resources.files("newtlab.image")
    entries[HOST_IMAGE_ENTRY] = json.loads(images.joinpath("platform.json").read_text())
    router = json.loads(images.joinpath("router-platform.json").read_text())
    base = entries[router.pop("base")]
    # Its own source notes beside the base's ("all" is its own).
    source = {**base["source"], **router["source"]}
    entries[ROUTER_IMAGE_ENTRY] = {**base, **router, "source": source}
    return dict(sorted(entries.items()))


def based(entry: dict[str, Any]) -> dict[str, Any]:
    """A platform entry with its ``base`` filled in; KeyError naming the catalog if unknown."""
    base = entry.get("base")
    if base is None:
        return entry
    entries = catalog()
    if base not in entries:
        raise KeyError(base)
    return {**entries[base], **entry}
