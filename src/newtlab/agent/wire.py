"""How values cross to a server's agent: JSON, with bytes as ``{"base64": ...}``."""

from __future__ import annotations

import base64
from typing import Any


def encode(value: Any) -> Any:
    """``value`` as JSON can carry it."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    return value


def decode(value: Any) -> Any:
    """The inverse of ``encode``."""
    if isinstance(value, dict) and set(value) == {"base64"}:
        return base64.b64decode(value["base64"])
    return value
