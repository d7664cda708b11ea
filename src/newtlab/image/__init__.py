"""newtlab's own images (``newtlab image build host``)."""

from __future__ import annotations

from .build import BuiltImage, build_host_image, probe_artifacts
from .errors import ImageBuildError

__all__ = ["BuiltImage", "ImageBuildError", "build_host_image", "probe_artifacts"]
