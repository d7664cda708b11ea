"""The image builder's one error."""

from __future__ import annotations

from ..errors import RuntimeFailure


class ImageBuildError(RuntimeFailure):
    """Building an image failed; the message says what and what to install or do."""
