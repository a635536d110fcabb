"""Safe, fast decoding: hostile files are refused before any pixel is decoded.

Order matters. The header is read first (Pillow reads no pixel data in ``Image.open``), and only
a file of an allowed format, whose extension does not lie, with a non-zero size within
``max_pixels`` (every frame counted when all frames are wanted) is decoded. A truncated or corrupt
file fails the decode. Every refusal is a :class:`~project.errors.PermanentError`: the same
bytes will fail the same way on every attempt.

Speed: for JPEG the decoder is asked for a smaller image (``draft``: libjpeg scales by 1/2, 1/4 or
1/8 in the DCT, for far less work), but never below twice the size the operation needs, so the final
Lanczos pass still has real pixels to work with (``benchmarks/images/scenario.py`` measures the gain
and the quality against a full decode).

Normalisation, so operations see one of four modes (L, LA, RGB, RGBA): EXIF orientation applied,
palette and transparency expanded, CMYK converted to RGB (through its ICC profile when it has
one), 16-bit greyscale scaled (not clipped) to 8 bits.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from PIL import Image, ImageCms, ImageOps, ImageSequence, UnidentifiedImageError

from project.errors import PermanentError
from tasks.images.validation import Limits

__all__ = ["EXTENSION_FORMATS", "INPUT_FORMATS", "Decoded", "decode", "to_working_mode"]

#: Decoders the kit lets near untrusted bytes (Pillow has dozens; each is attack surface).
INPUT_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
EXTENSION_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".png": "PNG",
    ".apng": "PNG",
    ".gif": "GIF",
    ".webp": "WEBP",
}
#: Decode at least this many times the needed size before the final resize (quality margin).
DRAFT_GAP = 2
#: What a broken file makes Pillow raise while decoding.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # rotated by 90 or 270 degrees
_EXIF_ORIENTATION = 0x0112

#: ``box(width, height)`` -> the size an operation needs from an image of that (oriented) size.
NeededSize = Callable[[int, int], tuple[int, int] | None]


@dataclass
class Decoded:
    """A decoded image: frames in a working mode, and what the output should carry over."""

    frames: list[Image.Image]
    format: str  # of the source, as Pillow names it
    width: int  # full-resolution, oriented size (before any draft scaling)
    height: int
    size_bytes: int
    icc_profile: bytes | None = None
    exif: bytes | None = None  # orientation removed: the pixels are already upright
    durations: list[int] = field(default_factory=list)  # milliseconds per frame
    loop: int | None = None

    @property
    def image(self) -> Image.Image:
        return self.frames[0]


def decode(
    data: bytes,
    source_path: str,
    limits: Limits,
    *,
    all_frames: bool = False,
    needed: NeededSize | None = None,
) -> Decoded:
    """Refuse or decode ``data`` (the content of ``source_path``, used in messages only)."""
    with _refusing_broken(source_path):
        image = _open_checked(data, source_path)
        orientation = _orientation(image)
        width, height = image.size
        if orientation in _SWAPPING_ORIENTATIONS:
            width, height = height, width
        frame_count = int(getattr(image, "n_frames", 1)) if all_frames else 1
        _check_size(image, frame_count, source_path, limits)
        icc = image.info.get("icc_profile") or None
        if needed is not None and image.format == "JPEG" and frame_count == 1:
            box = needed(width, height)
            if box is not None:
                draft = (box[0] * DRAFT_GAP, box[1] * DRAFT_GAP)
                if orientation in _SWAPPING_ORIENTATIONS:
                    draft = (draft[1], draft[0])
                image.draft(image.mode, draft)
        frames: list[Image.Image] = []
        durations: list[int] = []
        for frame in ImageSequence.Iterator(image):
            frame.load()
            durations.append(int(frame.info.get("duration") or 100))
            # A frame of a sequence is reused by the next seek: keep a copy of its own.
            upright = (
                ImageOps.exif_transpose(frame)
                if orientation != 1
                else (frame.copy() if frame_count > 1 else frame)
            )
            frames.append(to_working_mode(upright, icc))
            if len(frames) == frame_count:
                break
        exif = _exif_without_orientation(image)
    return Decoded(
        frames=frames,
        format=str(image.format),
        width=width,
        height=height,
        size_bytes=len(data),
        icc_profile=None if image.mode == "CMYK" else icc,  # CMYK was converted to sRGB
        exif=exif,
        durations=durations,
        loop=image.info.get("loop"),
    )


@contextmanager
def _refusing_broken(source_path: str) -> Iterator[None]:
    """Turns whatever a corrupt file makes Pillow raise into one clear PermanentError."""
    try:
        yield
    except PermanentError:
        raise
    except Image.DecompressionBombError as exc:
        message = f"source_path {source_path!r} refused by Pillow's own limit: {exc}"
        raise PermanentError(message) from exc
    except _DECODE_ERRORS as exc:
        raise PermanentError(
            f"source_path {source_path!r} is truncated or corrupt and cannot be decoded: {exc}"
        ) from exc


def _open_checked(data: bytes, source_path: str) -> Image.Image:
    if not data:
        raise PermanentError(f"source_path {source_path!r} is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=INPUT_FORMATS)
    except UnidentifiedImageError:
        raise PermanentError(
            f"source_path {source_path!r} is not a {', '.join(INPUT_FORMATS)} image "
            "(or its header is invalid, e.g. a zero width or height)"
        ) from None
    claimed = EXTENSION_FORMATS.get(PurePosixPath(source_path).suffix.lower())
    if claimed is not None and claimed != image.format:
        raise PermanentError(
            f"source_path {source_path!r} is named as {claimed} but its content is "
            f"{image.format}; refused (rename it, or convert it first)"
        )
    return image


def _check_size(image: Image.Image, frames: int, source_path: str, limits: Limits) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise PermanentError(f"source_path {source_path!r} has no pixels ({width}x{height})")
    if frames > limits.max_frames:
        raise PermanentError(
            f"source_path {source_path!r} has {frames} frames, over the limit of "
            f"{limits.max_frames} (KIT_IMAGE_MAX_FRAMES); use frames='first'"
        )
    pixels = width * height * frames
    if pixels > limits.max_pixels:
        raise PermanentError(
            f"source_path {source_path!r} refused as a possible decompression bomb: "
            f"{width}x{height}"
            + (f"x{frames} frames" if frames > 1 else "")
            + f" = {pixels} pixels, over the limit of {limits.max_pixels} (KIT_IMAGE_MAX_PIXELS)"
        )


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION) or 1)
    except Exception:  # a malformed EXIF block must not stop the image from being used
        return 1


def _exif_without_orientation(image: Image.Image) -> bytes | None:
    try:
        exif = image.getexif()
        if not exif:
            return None
        exif.pop(_EXIF_ORIENTATION, None)
        return exif.tobytes() if exif else None
    except Exception:  # malformed EXIF: dropped rather than copied
        return None


def to_working_mode(image: Image.Image, icc_profile: bytes | None = None) -> Image.Image:
    """``image`` as L, LA, RGB or RGBA, with colour and transparency preserved."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale: scale 0..65535 onto 0..255 (a plain convert would clip at 255).
        return image.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if mode == "CMYK":
        return _cmyk_to_rgb(image, icc_profile)
    if mode in ("P", "PA", "1", "L", "RGB") and image.has_transparency_data:
        return image.convert("LA" if mode in ("1", "L") else "RGBA")
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if mode in ("1", "F"):
        return image.convert("L")
    if mode == "La":
        return image.convert("LA")
    if mode in ("RGBa", "PA"):
        return image.convert("RGBA")
    return image.convert("RGB")  # P, RGBX, YCbCr, LAB, HSV


def _cmyk_to_rgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    if icc_profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            converted = ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to the naive conversion below
    return image.convert("RGB")
