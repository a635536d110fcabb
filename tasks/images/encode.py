"""Encoding: the output format's mode rules, metadata carried over, and quality search.

* JPEG has no alpha: transparent pixels are flattened on ``background`` (white unless asked),
  never left to Pillow, which would refuse RGBA or turn transparency black.
* The ICC profile is embedded only where its colour space matches the output's (a greyscale
  profile on an RGB image would tint it); ``strip`` converts to sRGB *before* dropping it, so a
  wide-gamut photo keeps its colours without a profile.
* EXIF is copied (orientation already applied and removed) unless stripped.
* :func:`encode_to_target` binary-searches the highest quality whose output fits a byte budget.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image, ImageCms

__all__ = ["DEFAULT_QUALITY", "EncodeOptions", "encode", "encode_to_target", "to_srgb"]

DEFAULT_QUALITY = {"JPEG": 85, "WEBP": 80}
_PROFILE_SPACES = {"L": "GRAY", "LA": "GRAY", "RGB": "RGB", "RGBA": "RGB"}


@dataclass(frozen=True)
class EncodeOptions:
    format: str  # JPEG, PNG, WEBP or GIF
    quality: int | None = None  # None: DEFAULT_QUALITY of the format
    lossless: bool = False  # WebP only
    background: tuple[int, int, int] = (255, 255, 255)
    icc_profile: bytes | None = None
    exif: bytes | None = None
    optimize: bool = False  # smaller files for more CPU: the compress task's choice
    durations: Sequence[int] = ()
    loop: int | None = None


def encode(frames: Sequence[Image.Image], options: EncodeOptions) -> bytes:
    """``frames`` (one, or an animation) in ``options.format``."""
    prepared = [_for_format(frame, options.format, options.background) for frame in frames]
    buffer = io.BytesIO()
    save: dict[str, Any] = _format_options(prepared[0], options)
    if len(prepared) > 1:
        save.update(
            save_all=True,
            append_images=prepared[1:],
            duration=list(options.durations) or 100,
            loop=options.loop if options.loop is not None else 0,
        )
        if options.format == "GIF":
            save["disposal"] = 2  # each frame replaces the last: no ghosting of transparent areas
    prepared[0].save(buffer, options.format, **save)
    return buffer.getvalue()


def encode_to_target(
    frames: Sequence[Image.Image], options: EncodeOptions, target: int, min_quality: int
) -> tuple[bytes, int, bool]:
    """The best quality in ``[min_quality, options.quality]`` whose output is at most ``target``
    bytes: ``(data, quality, met)``. If even ``min_quality`` is too big, its output, not met."""
    high = options.quality or DEFAULT_QUALITY[options.format]
    low = min(min_quality, high)
    best = encode(frames, replace(options, quality=high))
    if len(best) <= target:
        return best, high, True
    smallest = encode(frames, replace(options, quality=low))
    if len(smallest) > target:
        return smallest, low, False
    best, best_quality = smallest, low
    low += 1
    high -= 1
    while low <= high:  # invariant: best_quality fits, everything above `high` does not
        quality = (low + high) // 2
        data = encode(frames, replace(options, quality=quality))
        if len(data) <= target:
            best, best_quality, low = data, quality, quality + 1
        else:
            high = quality - 1
    return best, best_quality, True


def to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """``image`` converted from its embedded RGB profile to sRGB, for output without one."""
    if not icc_profile or image.mode not in ("RGB", "RGBA"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if _space(icc_profile) != "RGB":
            return image
        converted = ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode=image.mode
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile describes nothing usable: keep the pixels as they are
    return converted if converted is not None else image


def _space(icc_profile: bytes) -> str | None:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        return str(profile.profile.xcolor_space).strip()
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None


def _for_format(image: Image.Image, fmt: str, background: tuple[int, int, int]) -> Image.Image:
    if fmt == "JPEG":
        if image.mode in ("RGBA", "LA"):
            flat = Image.new("RGB", image.size, background)
            flat.paste(image.convert("RGBA"), mask=image.getchannel("A"))
            return flat.convert("L") if image.mode == "LA" else flat
        return image if image.mode in ("L", "RGB") else image.convert("RGB")
    if fmt == "WEBP" and image.mode in ("L", "LA"):
        return image.convert("RGBA" if image.mode == "LA" else "RGB")
    return image


def _format_options(image: Image.Image, options: EncodeOptions) -> dict[str, Any]:
    save: dict[str, Any] = {}
    fmt = options.format
    profile = options.icc_profile
    if profile and _space(profile) == _PROFILE_SPACES.get(image.mode) and fmt != "GIF":
        save["icc_profile"] = profile
    if options.exif and fmt in ("JPEG", "WEBP", "PNG"):
        save["exif"] = options.exif
    quality = options.quality or DEFAULT_QUALITY.get(fmt)
    if fmt == "JPEG":
        save.update(quality=quality, optimize=True, progressive=options.optimize)
    elif fmt == "WEBP":
        save.update(quality=quality, lossless=options.lossless, method=6 if options.optimize else 4)
        if options.lossless:  # for lossless WebP, quality is the compression effort
            save["quality"] = options.quality or (100 if options.optimize else 80)
    elif fmt == "PNG":
        if options.optimize:
            save["optimize"] = True
        else:
            save["compress_level"] = 6
    elif fmt == "GIF":
        save.update(optimize=options.optimize)
    return save
