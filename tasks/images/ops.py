"""Image operations on decoded PIL images: plain functions, no storage, no Celery.

Sizes are planned from the *full-resolution* source size (:func:`plan_resize`), then applied to
whatever the decoder produced (possibly a JPEG draft at 1/2..1/8 scale): the crop is kept in
fractions of the image, so the plan holds at any decode scale.

Resampling is Lanczos, with ``reducing_gap`` (a cheap integer ``reduce()`` first while the image
is over three times the target) and on premultiplied alpha: resampling straight RGBA drags the
colour of fully transparent pixels into the edges (dark or coloured fringes).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from project.errors import PermanentError
from tasks.images.validation import ResizeParams, WatermarkParams

__all__ = [
    "MAX_TILES",
    "REDUCING_GAP",
    "ResizePlan",
    "apply_resize",
    "load_font",
    "plan_for",
    "plan_resize",
    "plan_thumbnail",
    "render_text",
    "scale_mark",
    "watermark",
]

REDUCING_GAP = 3.0
#: Most copies of a tiled watermark on one image.
MAX_TILES = 2000
_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ResizePlan:
    """Output size and the source region it comes from, in fractions of the source (0..1)."""

    size: tuple[int, int]
    crop: Box = (0.0, 0.0, 1.0, 1.0)

    @property
    def needed(self) -> tuple[int, int]:
        """The smallest full-image size from which the crop still yields ``size`` pixels."""
        left, top, right, bottom = self.crop
        return (
            max(1, round(self.size[0] / (right - left))),
            max(1, round(self.size[1] / (bottom - top))),
        )


def plan_resize(
    width: int, height: int, box_w: int | None, box_h: int | None, mode: str, upscale: bool
) -> ResizePlan:
    """Fit inside, fill (crop to) or stretch to the box, never above the source unless asked.

    Without ``upscale``: *fit* stops at the source size; *fill* and *exact* shrink the requested
    box uniformly until it fits the source, so the output keeps the requested aspect ratio.
    """
    if mode == "fit":
        scales = [s for s in (box_w and box_w / width, box_h and box_h / height) if s]
        scale = min(scales)
        if not upscale:
            scale = min(scale, 1.0)
        return ResizePlan((max(1, round(width * scale)), max(1, round(height * scale))))
    assert box_w is not None and box_h is not None
    if not upscale:
        shrink = min(1.0, width / box_w, height / box_h)
        box_w, box_h = max(1, round(box_w * shrink)), max(1, round(box_h * shrink))
    if mode == "exact":
        return ResizePlan((box_w, box_h))
    # fill: scale to cover the box, then crop the overflow evenly from both sides.
    scale = max(box_w / width, box_h / height)
    crop_w, crop_h = min(1.0, box_w / (width * scale)), min(1.0, box_h / (height * scale))
    left, top = (1.0 - crop_w) / 2, (1.0 - crop_h) / 2
    return ResizePlan((box_w, box_h), (left, top, left + crop_w, top + crop_h))


def plan_for(params: ResizeParams, width: int, height: int) -> ResizePlan:
    return plan_resize(width, height, params.width, params.height, params.mode, params.upscale)


def plan_thumbnail(width: int, height: int, size: tuple[int, int], mode: str) -> ResizePlan:
    """A thumbnail never upscales: a small source gives a small thumbnail."""
    return plan_resize(width, height, size[0], size[1], mode, upscale=False)


def apply_resize(image: Image.Image, plan: ResizePlan) -> Image.Image:
    left, top, right, bottom = plan.crop
    box = (left * image.width, top * image.height, right * image.width, bottom * image.height)
    if plan.size == image.size and box == (0, 0, image.width, image.height):
        return image.copy()
    working = _PREMULTIPLIED.get(image.mode)
    source = image.convert(working) if working else image
    resized = source.resize(plan.size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)
    return resized.convert(image.mode) if working else resized


# -- watermark --------------------------------------------------------------------------------


def load_font(font_data: bytes | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The caller's TrueType/OpenType font, or Pillow's built-in scalable font."""
    if font_data is None:
        return ImageFont.load_default(size=size)
    try:
        return ImageFont.truetype(io.BytesIO(font_data), size)
    except OSError as exc:
        raise PermanentError(
            f"image:watermark: font is not a usable TrueType/OpenType font: {exc}"
        ) from exc


def render_text(
    text: str,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    color: tuple[int, int, int],
) -> Image.Image:
    """The text alone on a transparent RGBA canvas, cropped to its ink."""
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    left, top, right, bottom = (int(v) for v in probe.textbbox((0, 0), text, font=font))
    if right <= left or bottom <= top:
        raise PermanentError("image:watermark: text renders to nothing (only blank characters?)")
    canvas = Image.new("RGBA", (right - left, bottom - top), (*color, 0))
    ImageDraw.Draw(canvas).text((-left, -top), text, font=font, fill=(*color, 255))
    return canvas


def scale_mark(mark: Image.Image, base_width: int, scale: float | None) -> Image.Image:
    """An image watermark as RGBA, ``scale`` times the base image's width if given."""
    mark = mark.convert("RGBA")
    if scale is not None:
        width = max(1, round(base_width * scale))
        height = max(1, round(mark.height * width / mark.width))
        mark = apply_resize(mark, ResizePlan((width, height)))
    return mark


def watermark(base: Image.Image, mark: Image.Image, params: WatermarkParams) -> Image.Image:
    """``mark`` (RGBA) over ``base`` at ``params.position``, at ``params.opacity``.

    A mark larger than the image minus its margins is shrunk to fit. The result keeps alpha if
    ``base`` had it; greyscale becomes colour so a coloured mark stays coloured.
    """
    margin = min(params.margin, max(0, (min(base.size) - 1) // 2))
    room = (max(1, base.width - 2 * margin), max(1, base.height - 2 * margin))
    if mark.width > room[0] or mark.height > room[1]:
        factor = min(room[0] / mark.width, room[1] / mark.height)
        size = (max(1, int(mark.width * factor)), max(1, int(mark.height * factor)))
        mark = apply_resize(mark, ResizePlan(size))
    if params.opacity < 1.0:
        alpha = mark.getchannel("A").point(lambda a: round(a * params.opacity))
        mark.putalpha(alpha)
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    for x, y in _positions(base.size, mark.size, params.position, margin):
        layer.paste(mark, (x, y))
    keeps_alpha = base.mode in ("RGBA", "LA")
    composed = Image.alpha_composite(base.convert("RGBA"), layer)
    return composed if keeps_alpha else composed.convert("RGB")


def _positions(
    size: tuple[int, int], mark: tuple[int, int], position: str, margin: int
) -> list[tuple[int, int]]:
    (width, height), (mw, mh) = size, mark
    right, bottom = width - mw - margin, height - mh - margin
    if position == "tiled":
        step_x, step_y = mw + max(margin, 1), mh + max(margin, 1)
        tiles = math.ceil(width / step_x) * math.ceil(height / step_y)
        if tiles > MAX_TILES:  # a tiny mark on a huge image: spread out, don't paste forever
            spread = math.sqrt(tiles / MAX_TILES)
            step_x, step_y = math.ceil(step_x * spread), math.ceil(step_y * spread)
        return [
            (x, y)
            for y in range(margin // 2, height, step_y)
            for x in range(margin // 2, width, step_x)
        ]
    return [
        {
            "top-left": (margin, margin),
            "top-right": (right, margin),
            "bottom-left": (margin, bottom),
            "bottom-right": (right, bottom),
            "center": ((width - mw) // 2, (height - mh) // 2),
        }[position]
    ]
