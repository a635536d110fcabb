"""How close two images look: PSNR and SSIM on luma, with Pillow and the standard library only.

Speed is only worth having if the pictures look the same, so the images benchmark compares
each path's output with the naive one. 1.0 (SSIM) and infinity (PSNR) mean identical.
"""

from __future__ import annotations

import math
from array import array

from PIL import Image

__all__ = ["psnr", "ssim"]


def _luma(image: Image.Image, width: int, height: int) -> bytes:
    return image.convert("L").crop((0, 0, width, height)).tobytes()


def psnr(reference: Image.Image, other: Image.Image) -> float:
    """Peak signal-to-noise ratio on luma, in dB (infinity for identical images)."""
    a, b = _luma(reference, *reference.size), _luma(other, *reference.size)
    mse = sum((p - q) * (p - q) for p, q in zip(a, b, strict=True)) / len(a)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ssim(reference: Image.Image, other: Image.Image, block: int = 8) -> float:
    """Mean structural similarity on luma over ``block`` x ``block`` windows.

    Products are formed per pixel in Python, block means by Pillow's BOX resampling (exact
    averages when the size divides evenly, which the crop ensures).
    """
    width, height = (reference.width // block) * block, (reference.height // block) * block
    a, b = _luma(reference, width, height), _luma(other, width, height)
    small = (width // block, height // block)

    def means(values: list[int]) -> array[float]:
        image = Image.frombytes("F", (width, height), array("f", values).tobytes())
        return array("f", image.resize(small, Image.Resampling.BOX).tobytes())

    mx, my = means(list(a)), means(list(b))
    xx, yy = means([p * p for p in a]), means([q * q for q in b])
    xy = means([p * q for p, q in zip(a, b, strict=True)])
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    total = 0.0
    for i in range(len(mx)):
        vx, vy, cov = xx[i] - mx[i] ** 2, yy[i] - my[i] ** 2, xy[i] - mx[i] * my[i]
        total += ((2 * mx[i] * my[i] + c1) * (2 * cov + c2)) / (
            (mx[i] ** 2 + my[i] ** 2 + c1) * (vx + vy + c2)
        )
    return total / len(mx)
