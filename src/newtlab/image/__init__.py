"""newtlab's own images (``newtlab image build host``).

``build_host_image`` builds the small Linux host/router image and the KVM
probe's kernel + initramfs; ``host_platform`` is the image's platforms.json
entry, console contract included (see docs/image.md).
"""

from __future__ import annotations

from ..agent.accel import PROBE_MARKER
from .build import (
    ROOT_PASSWORD,
    ROOT_USER,
    BuiltImage,
    build_host_image,
    host_platform,
    probe_artifacts,
)
from .errors import ImageBuildError

__all__ = [
    "PROBE_MARKER",
    "ROOT_PASSWORD",
    "ROOT_USER",
    "BuiltImage",
    "ImageBuildError",
    "build_host_image",
    "host_platform",
    "probe_artifacts",
]
