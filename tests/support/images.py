"""Images the tests generate with Pillow: every mode and format the catalog claims to handle,
and the hostile files it must refuse. Nothing is checked in; everything is made on the spot."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, ImageCms, ImageDraw

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def halves(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: orientation and crops are readable from two pixels."""
    image = Image.new("RGB", size, BLUE)
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 2 - 1, size[1]), fill=RED)
    return image.convert(mode) if mode != "RGB" else image


def photo(size: tuple[int, int]) -> Image.Image:
    """Photo-like content (gradients, edges, noise) so codecs and resamplers have work to do."""
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise(size, 24)
    image = Image.merge("RGB", (gradient, noise, gradient.transpose(Image.Transpose.ROTATE_180)))
    draw = ImageDraw.Draw(image)
    for i in range(8):
        x, y = width * i // 8, height * ((i * 3) % 8) // 8
        draw.ellipse((x, y, x + width // 6, y + height // 6), fill=(40 * i % 256, 200, 90))
    return image


def save(image: Image.Image, path: Path, fmt: str | None = None, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **options)
    return path


def rgba_circle(size: tuple[int, int]) -> Image.Image:
    """Opaque red disc on fully transparent green: alpha handling shows at the corners."""
    image = Image.new("RGBA", size, (0, 255, 0, 0))
    ImageDraw.Draw(image).ellipse(
        (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill=(*RED, 255)
    )
    return image


def palette_with_transparency(size: tuple[int, int]) -> Image.Image:
    image = rgba_circle(size).convert("RGB").quantize(colors=4)
    corner_index = image.getpixel((0, 0))
    image.info["transparency"] = corner_index
    return image


def gray16(size: tuple[int, int], value: int) -> Image.Image:
    """16-bit greyscale (a PNG saves it as bit depth 16): one uniform value."""
    image = Image.new("I;16", size)
    image.paste(value, (0, 0, *size))
    return image


def jpeg_with_orientation(stored: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def srgb_profile() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def animated_gif(size: tuple[int, int], colors: list[tuple[int, int, int]]) -> bytes:
    frames = [Image.new("RGB", size, color) for color in colors]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` in its header, with no pixel data at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def jpeg_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def opened(path: Path) -> Image.Image:
    """The image at ``path``, fully loaded (so the file can be replaced afterwards)."""
    with Image.open(path) as image:
        image.load()
        return image


def close_to(pixel: object, expected: tuple[int, ...], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple), pixel
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, expected, strict=False))


def px(image: Image.Image, xy: tuple[int, int]) -> Any:
    """``getpixel`` typed for tests: a tuple for multi-band images, an int for greyscale."""
    return image.getpixel(xy)
