"""A real newtlink process per test, on free ports, always killed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from newtlink_kit import Newtlink, StartBridge, argv_for, free_ports, link_config, write_config


@pytest.fixture
def start_bridge(tmp_path: Path) -> Iterator[StartBridge]:
    """``start_bridge(links=1, mode="listen", link_extra={}, **config_extra)`` → a READY Newtlink.

    Every process started here is SIGKILLed in the finalizer, pass or fail.
    """
    started: list[Newtlink] = []

    def start(
        links: int = 1,
        mode: str = "listen",
        link_extra: dict[str, Any] | None = None,
        supervise: bool = False,
        **extra: Any,
    ) -> Newtlink:
        directory = tmp_path / f"bridge{len(started)}"
        directory.mkdir()
        ports = free_ports(2 * links)
        config: dict[str, Any] = {
            "lab": "nltest",
            "links": [
                link_config(i, ports[2 * i], ports[2 * i + 1], mode, **(link_extra or {}))
                for i in range(links)
            ],
            "stats_unix": str(directory / "newtlink.sock"),
            **extra,
        }
        argv = argv_for(write_config(directory, config), supervise=supervise)
        bridge = Newtlink(directory, config, argv, mode)
        started.append(bridge)
        line = bridge.ready_line()
        assert line == f"READY {bridge.proc.pid}\n", bridge.stderr()
        return bridge

    yield start
    for bridge in started:
        bridge.kill()
