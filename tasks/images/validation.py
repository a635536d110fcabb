"""Arguments of the image tasks, parsed once for both sides of the queue.

The producer runs these parsers before publishing (so a bad payload is a
:class:`~project.errors.ValidationError` in the caller's hands, with nothing enqueued) and the
worker runs them again on what it received (a message may come from anywhere: ``send_task``,
another language, an old producer). Only what can be checked without the file is checked here:
the storage and the decoder refuse the rest in the worker.

Every argument is a keyword, read through the catalog's parser (:class:`tasks.arguments.Arguments`);
unknown ones are refused by name, so a typo (``widht``) is an error rather than a silently ignored
option. In a chain, a task may instead get its source from the previous image task's result (its
``path``), passed by Celery as the one positional argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol, TypeVar

from project.config import current
from project.errors import ValidationError
from project.storage import clean_path
from tasks.arguments import Arguments
from tasks.images.settings import ImageSettings

__all__ = [
    "ANIMATED_FORMATS",
    "OUTPUT_FORMATS",
    "POSITIONS",
    "Common",
    "CompressParams",
    "Limits",
    "ResizeParams",
    "ThumbnailParams",
    "WatermarkParams",
    "format_of_path",
    "parse_compress",
    "parse_resize",
    "parse_thumbnail",
    "parse_watermark",
]

#: Output formats by extension (the extension of ``dest_path`` chooses the encoder).
OUTPUT_FORMATS: Mapping[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".gif": "GIF",
}
#: Formats that can hold every frame of an animation (``frames="all"``).
ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG"})
RESIZE_MODES = ("fit", "fill", "exact")
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center", "tiled")
FRAMES = ("first", "all")
MAX_THUMBNAILS = 16
MAX_TEXT_LENGTH = 500
_COMPRESS_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "png": "PNG"}

Params = TypeVar("Params", covariant=True)


@dataclass(frozen=True)
class Limits:
    """The refusal thresholds (``KIT_IMAGE_*``), read from settings once per task."""

    max_pixels: int
    max_frames: int
    max_dimension: int
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: ImageSettings) -> Limits:
        return cls(
            max_pixels=settings.max_pixels,
            max_frames=settings.max_frames,
            max_dimension=settings.max_dimension,
            max_bytes=settings.max_bytes,
        )

    @classmethod
    def current(cls) -> Limits:
        """This process's limits (KIT_IMAGE_*)."""
        return cls.from_settings(current(ImageSettings))

    def check_output(self, task: str, width: int, height: int, frames: int = 1) -> None:
        """Refuse an output too large to make: the requested size is a bomb of its own."""
        if max(width, height) > self.max_dimension:
            raise ValidationError(
                f"{task}: output {width}x{height} exceeds {self.max_dimension} pixels per side "
                "(KIT_IMAGE_MAX_DIMENSION)"
            )
        if width * height * frames > self.max_pixels:
            raise ValidationError(
                f"{task}: output {width}x{height}"
                + (f"x{frames} frames" if frames > 1 else "")
                + f" exceeds {self.max_pixels} pixels (KIT_IMAGE_MAX_PIXELS)"
            )


@dataclass(frozen=True)
class Common:
    """What every image task takes: where from, where to, and how to encode."""

    source_path: str | None  # None only while validating a chain step before it runs
    dest_path: str
    format: str  # Pillow's name of the output format, from dest_path's extension
    frames: str = "first"
    background: tuple[int, int, int] = (255, 255, 255)  # under alpha, for JPEG output
    quality: int | None = None


@dataclass(frozen=True)
class ResizeParams:
    common: Common
    width: int | None
    height: int | None
    mode: str = "fit"
    upscale: bool = False


@dataclass(frozen=True)
class WatermarkParams:
    common: Common
    text: str | None
    watermark_path: str | None
    font: str | None = None
    font_size: int | None = None
    color: tuple[int, int, int] = (255, 255, 255)
    opacity: float = 0.5
    position: str = "bottom-right"
    margin: int = 16
    scale: float | None = None


@dataclass(frozen=True)
class CompressParams:
    common: Common
    lossless: bool = False
    strip_metadata: bool = False
    target_bytes: int | None = None
    min_quality: int = 10


@dataclass(frozen=True)
class ThumbnailParams:
    common: Common
    sizes: tuple[tuple[int, int], ...]
    mode: str = "fit"

    def dest_for(self, size: tuple[int, int]) -> str:
        """``dest_path`` with ``{size}`` replaced by ``WxH``, or ``_WxH`` before the suffix."""
        label = f"{size[0]}x{size[1]}"
        if "{size}" in self.common.dest_path:
            return self.common.dest_path.replace("{size}", label)
        path = PurePosixPath(self.common.dest_path)
        return str(path.with_name(f"{path.stem}_{label}{path.suffix}"))


def format_of_path(path: str, argument: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValidationError(
            f"{argument} must end in one of {', '.join(sorted(OUTPUT_FORMATS))}, got {path!r}"
        )
    return OUTPUT_FORMATS[suffix]


def _common(
    args: Arguments, previous: Sequence[Any], *, chained: bool, placeholder_ok: bool = False
) -> Common:
    source = args.path("source_path", required=False)
    if args.keywords_only(previous, at_most=1):
        result = previous[0]
        if source is not None:
            raise args.error(
                "source_path given and also a previous task's result; "
                "use an immutable signature (.si) to ignore the result"
            )
        if not isinstance(result, Mapping) or not isinstance(result.get("path"), str):
            raise args.error(
                "the positional argument must be a previous image task's result "
                "with a 'path'; pass source_path= as a keyword instead"
            )
        source = clean_path(result["path"], f"{args.task}: previous result's path")
    if source is None and not chained:
        raise args.error("source_path is required")
    dest = args.path("dest_path", required=True)
    assert dest is not None
    if "{size}" in dest and not placeholder_ok:
        raise args.fail("dest_path", "a path without a {size} placeholder")
    fmt = format_of_path(dest.replace("{size}", "0x0"), f"{args.task}: dest_path")
    frames = args.choice("frames", FRAMES, "first")
    if frames == "all" and fmt not in ANIMATED_FORMATS:
        raise args.error(
            f"frames='all' needs an animated output format (.gif, .webp, .png), not {fmt}"
        )
    return Common(
        source_path=source,
        dest_path=dest,
        format=fmt,
        frames=frames,
        background=args.color("background", (255, 255, 255)),
        quality=args.integer("quality", 1, 100),
    )


class Parser(Protocol[Params]):
    """A task's parser: its parameters from ``(previous, kwargs)``, or ValidationError;
    ``chained``: a chain step whose source comes from the step before."""

    def __call__(
        self,
        previous: Sequence[Any],
        kwargs: Mapping[str, Any],
        limits: Limits,
        chained: bool = False,
    ) -> Params: ...


#: How each task's arguments are parsed, by task name (the worker and the producer).
PARSERS: dict[str, Parser[Any]] = {}


def _parser(
    task: str, *, placeholder_ok: bool = False
) -> Callable[[Callable[[Arguments, Common, Limits], Params]], Parser[Params]]:
    """Make ``parse(args, common, limits)`` the parser of ``task``: the common arguments are
    read first (:func:`_common`), then the task's own; the parser is registered in
    :data:`PARSERS` under the task's name."""

    def register(body: Callable[[Arguments, Common, Limits], Params]) -> Parser[Params]:
        def parse(
            previous: Sequence[Any],
            kwargs: Mapping[str, Any],
            limits: Limits,
            chained: bool = False,
        ) -> Params:
            args = Arguments(task, kwargs)
            common = _common(args, previous, chained=chained, placeholder_ok=placeholder_ok)
            return body(args, common, limits)

        parse.__name__ = parse.__qualname__ = body.__name__
        parse.__doc__ = body.__doc__
        PARSERS[task] = parse
        return parse

    return register


@_parser("image:resize")
def parse_resize(args: Arguments, common: Common, limits: Limits) -> ResizeParams:
    width = args.integer("width", 1, limits.max_dimension)
    height = args.integer("height", 1, limits.max_dimension)
    mode = args.choice("mode", RESIZE_MODES, "fit")
    upscale = args.boolean("upscale")
    args.done()
    if width is None and height is None:
        raise args.error("give width, height or both")
    if mode != "fit" and (width is None or height is None):
        raise args.error(f"mode={mode!r} needs both width and height")
    if width is not None and height is not None and (mode != "fit" or upscale):
        limits.check_output(args.task, width, height)
    return ResizeParams(common, width, height, mode, upscale)


@_parser("image:watermark")
def parse_watermark(args: Arguments, common: Common, limits: Limits) -> WatermarkParams:
    text = args.text("text", MAX_TEXT_LENGTH)
    mark = args.path("watermark_path", required=False)
    if (text is None) == (mark is None):
        raise args.error("give exactly one of text or watermark_path")
    font = args.path("font", required=False)
    if font is not None and PurePosixPath(font).suffix.lower() not in (".ttf", ".otf"):
        raise args.fail("font", "a .ttf or .otf file in the storage (or nothing: built-in font)")
    params = WatermarkParams(
        common=common,
        text=text,
        watermark_path=mark,
        font=font,
        font_size=args.integer("font_size", 1, limits.max_dimension),
        color=args.color("color", (255, 255, 255)),
        opacity=args.number("opacity", 0.5, above=0.0, at_most=1.0),
        position=args.choice("position", POSITIONS, "bottom-right"),
        margin=args.integer("margin", 0, limits.max_dimension, 16) or 0,
        scale=args.number("scale", None, above=0.0, at_most=1.0),
    )
    args.done()
    if text is not None and params.scale is not None:
        raise args.error("scale applies to watermark_path; use font_size")
    if mark is not None and (font is not None or params.font_size is not None):
        raise args.error("font and font_size apply to text watermarks")
    return params


@_parser("image:compress")
def parse_compress(args: Arguments, common: Common, limits: Limits) -> CompressParams:
    requested = args.get("format")
    if requested is not None:
        if not isinstance(requested, str) or requested.lower() not in _COMPRESS_FORMATS:
            raise args.fail("format", "jpeg, webp or png")
        if _COMPRESS_FORMATS[requested.lower()] != common.format:
            raise args.error(
                f"format={requested!r} but dest_path is a {common.format} name; make them agree"
            )
    if common.format not in ("JPEG", "WEBP", "PNG"):
        raise args.error("output must be JPEG, WebP or PNG")
    params = CompressParams(
        common=common,
        lossless=args.boolean("lossless"),
        strip_metadata=args.boolean("strip_metadata"),
        target_bytes=args.integer("target_bytes", 1, 1 << 40),
        min_quality=args.integer("min_quality", 1, 100, 10) or 10,
    )
    args.done()
    lossy = common.format in ("JPEG", "WEBP") and not params.lossless
    if params.lossless and common.format == "JPEG":
        raise args.error("JPEG has no lossless mode; use WebP or PNG")
    if not lossy and common.quality is not None and common.format == "PNG":
        raise args.error("PNG is lossless; quality does not apply")
    if params.target_bytes is not None and not lossy:
        raise args.error("target_bytes needs lossy JPEG or WebP output")
    if common.quality is not None and params.min_quality > common.quality:
        raise args.error("min_quality is above quality")
    return params


@_parser("image:thumbnail", placeholder_ok=True)
def parse_thumbnail(args: Arguments, common: Common, limits: Limits) -> ThumbnailParams:
    raw = args.get("sizes")
    accepts = (
        f"a list of 1 to {MAX_THUMBNAILS} sizes, each a number (a square box) or [width, height],"
        f" from 1 to {limits.max_dimension}"
    )
    if not isinstance(raw, list | tuple) or not 1 <= len(raw) <= MAX_THUMBNAILS:
        raise args.fail("sizes", accepts)
    sizes: list[tuple[int, int]] = []
    for item in raw:
        pair = (item, item) if isinstance(item, int) else item
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= limits.max_dimension
                for v in pair
            )
        ):
            raise args.fail("sizes", accepts)
        sizes.append((int(pair[0]), int(pair[1])))
    if len(set(sizes)) != len(sizes):
        raise args.fail("sizes", accepts + ", without repeats")
    mode = args.choice("mode", ("fit", "fill"), "fit")
    args.done()
    for width, height in sizes:
        limits.check_output(args.task, width, height)
    return ThumbnailParams(common, tuple(sizes), mode)


def _checker(parser: Parser[Any]) -> Callable[[Sequence[Any], Mapping[str, Any]], None]:
    def check(args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        parser(tuple(args), dict(kwargs), Limits.current(), False)

    return check


#: The producer-side checks by task name (the ``celery_kit.checks`` entry point): a producer
#: that sends ``image:*`` by name, without the catalog's tasks or Pillow, is still refused a
#: bad payload before anything is published.
CHECKS = {name: _checker(parser) for name, parser in PARSERS.items()}
