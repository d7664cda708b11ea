"""newtlab's own images (``newtlab image build host|router``).

``build_host_image`` builds the small Linux host image and the KVM probe's
kernel + initramfs, ``build_image("router", ...)`` the FRR router image on
top of it; ``host_platform`` is the host image's platforms.json entry,
console contract included (see docs/image.md).
"""

from __future__ import annotations

from ..agent.accel import PROBE_MARKER
from .build import (
    RECIPES,
    ROOT_PASSWORD,
    ROOT_USER,
    BuiltImage,
    build_host_image,
    build_image,
    host_platform,
    probe_artifacts,
)
from .errors import ImageBuildError

IMAGE_KINDS = tuple(RECIPES)  # what `newtlab image build` takes

__all__ = [
    "IMAGE_KINDS",
    "PROBE_MARKER",
    "ROOT_PASSWORD",
    "ROOT_USER",
    "BuiltImage",
    "ImageBuildError",
    "build_host_image",
    "build_image",
    "host_platform",
    "probe_artifacts",
]
