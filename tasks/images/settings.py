"""The image tasks' refusal thresholds (``KIT_IMAGE_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from project.config.env import Env

__all__ = ["ImageSettings"]

DEFAULT_IMAGE_MAX_PIXELS = 50_000_000  # a decoded RGBA frame of this size is 200 MB
#: Pillow refuses anything above twice its own MAX_IMAGE_PIXELS whatever the kit allows.
IMAGE_MAX_PIXELS_CEILING = 178_956_970
DEFAULT_IMAGE_MAX_DIMENSION = 10_000  # pixels per side of a requested output
DEFAULT_IMAGE_MAX_BYTES = 100 * 1024 * 1024  # a source file larger than this is not read
DEFAULT_IMAGE_MAX_FRAMES = 300  # frames of an animation processed with frames="all"


@dataclass(frozen=True)
class ImageSettings:
    max_pixels: int = DEFAULT_IMAGE_MAX_PIXELS
    max_dimension: int = DEFAULT_IMAGE_MAX_DIMENSION  # pixels per side
    max_bytes: int = DEFAULT_IMAGE_MAX_BYTES
    max_frames: int = DEFAULT_IMAGE_MAX_FRAMES

    @classmethod
    def from_env(cls, env: Env) -> ImageSettings:
        return cls(
            max_pixels=env.integer(
                "KIT_IMAGE_MAX_PIXELS",
                DEFAULT_IMAGE_MAX_PIXELS,
                minimum=1,
                maximum=IMAGE_MAX_PIXELS_CEILING,
            ),
            max_dimension=env.integer(
                "KIT_IMAGE_MAX_DIMENSION", DEFAULT_IMAGE_MAX_DIMENSION, minimum=1, maximum=65_500
            ),
            max_bytes=env.integer("KIT_IMAGE_MAX_BYTES", DEFAULT_IMAGE_MAX_BYTES, minimum=1),
            max_frames=env.integer("KIT_IMAGE_MAX_FRAMES", DEFAULT_IMAGE_MAX_FRAMES, minimum=1),
        )
