"""The image catalog: its tasks (:mod:`.tasks`, :mod:`.batch`), the plain functions behind them,
its settings and its ``kit batch`` / ``kit workflow`` commands (:mod:`.cli`).

* :mod:`.validation` (with the catalog's parser, :mod:`tasks.arguments`): the tasks' arguments,
  parsed the same way at enqueue time and in the worker (importable without Pillow, for producers);
* :mod:`.decode`: safe decoding (format allow-list, decompression-bomb and truncation refusal)
  and normalisation (EXIF orientation, palette, CMYK, 16-bit, animation, ICC);
* :mod:`.ops`: resize, crop, watermark on PIL images;
* :mod:`.encode`: output formats, metadata and quality search;
* :mod:`.jobs`: each operation end to end over a :class:`~project.storage.Storage`;
* :mod:`.telemetry`: span attributes and the ``kit.image.duration`` histogram.
"""
