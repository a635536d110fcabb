"""Image processing for the image task catalog (``tasks/images.py``), as plain functions.

* :mod:`.validation` (with :mod:`.arguments`): the tasks' arguments, parsed the same way at
  enqueue time and in the worker;
* :mod:`.decode`: safe decoding (format allow-list, decompression-bomb and truncation refusal)
  and normalisation (EXIF orientation, palette, CMYK, 16-bit, animation, ICC);
* :mod:`.ops`: resize, crop, watermark on PIL images;
* :mod:`.encode`: output formats, metadata and quality search;
* :mod:`.jobs`: each operation end to end over a :class:`~project.storage.Storage`;
* :mod:`.telemetry`: span attributes and the ``kit.image.duration`` histogram.
"""

from __future__ import annotations

from tasks.images.jobs import compress, resize, thumbnail, watermark
from tasks.images.validation import Limits

__all__ = ["Limits", "compress", "resize", "thumbnail", "watermark"]
