"""The image operations end to end: read, decode, process, encode, write, describe.

One function per catalog task, taking parsed parameters (:mod:`.validation`), a
:class:`~project.storage.Storage` and the :class:`~.validation.Limits`, and returning the task's
JSON result. No Celery here: the tasks in ``tasks/images/tasks.py`` only parse arguments and call
these, so the same work runs from a script or a test without a broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from project.storage import Storage
from tasks.images.decode import Decoded, decode
from tasks.images.encode import DEFAULT_QUALITY, EncodeOptions, encode, encode_to_target, to_srgb
from tasks.images.ops import (
    apply_resize,
    load_font,
    plan_for,
    plan_thumbnail,
    render_text,
    scale_mark,
)
from tasks.images.ops import watermark as apply_watermark
from tasks.images.telemetry import Observation, observed, tracer
from tasks.images.validation import (
    Common,
    CompressParams,
    Limits,
    ResizeParams,
    ThumbnailParams,
    WatermarkParams,
)

__all__ = ["compress", "resize", "thumbnail", "watermark"]

Result = dict[str, Any]


def resize(params: ResizeParams, storage: Storage, limits: Limits) -> Result:
    """Resize (fit, fill or exact) with Lanczos; no upscaling unless ``upscale=True``."""
    with observed("resize") as obs:
        decoded = _decode(
            storage, params.common, limits, obs, lambda w, h: plan_for(params, w, h).needed
        )
        plan = plan_for(params, decoded.width, decoded.height)
        limits.check_output("image:resize", *plan.size, len(decoded.frames))
        frames = [apply_resize(frame, plan) for frame in decoded.frames]
        return _write(storage, params.common, frames, decoded, obs)


def watermark(params: WatermarkParams, storage: Storage, limits: Limits) -> Result:
    """A text or image watermark at a corner, the centre, or tiled."""
    with observed("watermark") as obs:
        decoded = _decode(storage, params.common, limits, obs)
        base = decoded.image
        if params.text is not None:
            size = params.font_size or max(12, round(min(base.size) / 20))
            font_data = storage.read(params.font, limits.max_bytes) if params.font else None
            mark = render_text(params.text, load_font(font_data, size), params.color)
        else:
            assert params.watermark_path is not None
            data = storage.read(params.watermark_path, limits.max_bytes)
            with tracer.start_as_current_span("image.decode"):
                source = decode(data, params.watermark_path, limits).image
            mark = scale_mark(source, base.width, params.scale)
        frames = [apply_watermark(frame, mark.copy(), params) for frame in decoded.frames]
        return _write(storage, params.common, frames, decoded, obs)


def compress(params: CompressParams, storage: Storage, limits: Limits) -> Result:
    """Re-encode as JPEG, WebP or PNG, optionally stripped and within a byte budget."""
    with observed("compress") as obs:
        common = params.common
        decoded = _decode(storage, common, limits, obs)
        frames = decoded.frames
        if params.strip_metadata:
            frames = [to_srgb(frame, decoded.icc_profile) for frame in frames]
            decoded.icc_profile = decoded.exif = None
        options = _options(common, decoded, optimize=True, lossless=params.lossless)
        span_attributes = {"image.format": common.format}
        with tracer.start_as_current_span("image.encode", attributes=span_attributes):
            if params.target_bytes is None:
                lossy = not params.lossless
                quality = (options.quality or DEFAULT_QUALITY.get(common.format)) if lossy else None
                data, met = encode(frames, options), None
            else:
                data, quality, met = encode_to_target(
                    frames, options, params.target_bytes, params.min_quality
                )
        result = _store(storage, common.dest_path, data, frames, common.format, obs)
        extra = {"quality": quality, "target_met": met}
        obs.add("output", quality=quality, target_met=met)
        return {**result, **{k: v for k, v in extra.items() if v is not None}}


def thumbnail(params: ThumbnailParams, storage: Storage, limits: Limits) -> Result:
    """Several thumbnail sizes from one decode."""
    with observed("thumbnail") as obs:

        def needed(width: int, height: int) -> tuple[int, int]:
            plans = [plan_thumbnail(width, height, size, params.mode) for size in params.sizes]
            return max(p.needed[0] for p in plans), max(p.needed[1] for p in plans)

        decoded = _decode(storage, params.common, limits, obs, needed)
        outputs = []
        for size in sorted(params.sizes, key=lambda s: -s[0] * s[1]):
            plan = plan_thumbnail(decoded.width, decoded.height, size, params.mode)
            frames = [apply_resize(frame, plan) for frame in decoded.frames]
            data = _encode(frames, _options(params.common, decoded, keep_exif=False))
            outputs.append(
                _store(storage, params.dest_for(size), data, frames, params.common.format, None)
            )
        obs.add(
            "output",
            count=len(outputs),
            format=params.common.format,
            width=outputs[0]["width"],
            height=outputs[0]["height"],
            bytes=sum(o["bytes"] for o in outputs),
            paths=[o["path"] for o in outputs],
        )
        return {"thumbnails": outputs, "elapsed": round(obs.elapsed(), 4)}


# -- shared steps -----------------------------------------------------------------------------


def _decode(
    storage: Storage, common: Common, limits: Limits, obs: Observation, needed: Any = None
) -> Decoded:
    assert common.source_path is not None
    obs.add("source", path=common.source_path)
    data = storage.read(common.source_path, limits.max_bytes)
    with tracer.start_as_current_span("image.decode", attributes={"image.bytes": len(data)}):
        decoded = decode(
            data, common.source_path, limits, all_frames=common.frames == "all", needed=needed
        )
    obs.add(
        "source",
        format=decoded.format,
        width=decoded.width,
        height=decoded.height,
        bytes=decoded.size_bytes,
        frames=len(decoded.frames),
    )
    return decoded


def _options(
    common: Common,
    decoded: Decoded,
    *,
    keep_exif: bool = True,
    optimize: bool = False,
    lossless: bool = False,
) -> EncodeOptions:
    return EncodeOptions(
        format=common.format,
        quality=common.quality,
        lossless=lossless,
        background=common.background,
        icc_profile=decoded.icc_profile,
        exif=decoded.exif if keep_exif else None,
        optimize=optimize,
        durations=decoded.durations,
        loop=decoded.loop,
    )


def _encode(frames: Sequence[Image.Image], options: EncodeOptions) -> bytes:
    with tracer.start_as_current_span("image.encode", attributes={"image.format": options.format}):
        return encode(frames, options)


def _write(
    storage: Storage,
    common: Common,
    frames: Sequence[Image.Image],
    decoded: Decoded,
    obs: Observation,
) -> Result:
    data = _encode(frames, _options(common, decoded))
    return _store(storage, common.dest_path, data, frames, common.format, obs)


def _store(
    storage: Storage,
    path: str,
    data: bytes,
    frames: Sequence[Image.Image],
    fmt: str,
    obs: Observation | None,
) -> Result:
    storage.write(path, data)
    width, height = frames[0].size
    if obs is not None:
        obs.add("output", path=path, format=fmt, width=width, height=height, bytes=len(data))
    result: Result = {
        "path": path,
        "width": width,
        "height": height,
        "bytes": len(data),
        "format": fmt.lower(),
        "frames": len(frames),
    }
    if obs is not None:
        result["elapsed"] = round(obs.elapsed(), 4)
    return result
