"""The image operations as plain functions, on images generated here (no broker, no worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from project.errors import PermanentError, ValidationError
from project.storage import LocalStorage
from tasks.images import jobs
from tasks.images.validation import (
    Limits,
    parse_compress,
    parse_resize,
    parse_thumbnail,
    parse_watermark,
)
from tests.support import images as gen

LIMITS = Limits(max_pixels=4_000_000, max_frames=50, max_dimension=5000, max_bytes=20_000_000)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path)


def resize(storage: LocalStorage, limits: Limits = LIMITS, **kwargs: Any) -> dict[str, Any]:
    return jobs.resize(parse_resize((), kwargs, limits), storage, limits)


@pytest.mark.parametrize(
    ("mode", "src_ext", "dest_ext", "out_mode"),
    [
        ("RGB", "jpg", "png", "RGB"),
        ("L", "png", "jpg", "L"),
        ("RGBA", "png", "webp", "RGB"),  # opaque alpha: libwebp stores none
        ("P", "gif", "png", "RGB"),
        ("RGB", "webp", "jpg", "RGB"),
    ],
)
def test_resize_fit_across_modes_and_formats(
    storage: LocalStorage, mode: str, src_ext: str, dest_ext: str, out_mode: str
) -> None:
    gen.save(gen.halves((400, 200), mode), storage.root / f"in.{src_ext}")
    result = resize(storage, source_path=f"in.{src_ext}", dest_path=f"out.{dest_ext}", width=100)
    out = gen.opened(storage.root / f"out.{dest_ext}")
    assert (result["width"], result["height"], out.size) == (100, 50, (100, 50))
    assert result["format"] == str(out.format).lower() and result["bytes"] > 0
    assert out.mode == out_mode
    left, right = gen.px(out.convert("RGB"), (10, 25)), gen.px(out.convert("RGB"), (90, 25))
    if mode != "L":
        assert gen.close_to(left, gen.RED) and gen.close_to(right, gen.BLUE)


def test_fill_crops_exact_stretches_and_nothing_upscales_by_default(
    storage: LocalStorage,
) -> None:
    gen.save(gen.halves((400, 200)), storage.root / "in.png")
    fill = resize(
        storage, source_path="in.png", dest_path="fill.png", width=100, height=100, mode="fill"
    )
    exact = resize(
        storage, source_path="in.png", dest_path="exact.png", width=100, height=100, mode="exact"
    )
    small = resize(storage, source_path="in.png", dest_path="small.png", width=800)
    big = resize(storage, source_path="in.png", dest_path="big.png", width=800, upscale=True)
    boxed = resize(
        storage, source_path="in.png", dest_path="boxed.png", width=800, height=800, mode="fill"
    )
    assert (fill["width"], fill["height"]) == (100, 100) == (exact["width"], exact["height"])
    assert (small["width"], small["height"]) == (400, 200)
    assert (big["width"], big["height"]) == (800, 400)
    assert (boxed["width"], boxed["height"]) == (200, 200)  # box shrunk to fit the source
    filled = gen.opened(storage.root / "fill.png")
    assert gen.close_to(gen.px(filled, (5, 50)), gen.RED)  # the centre half of each colour
    assert gen.close_to(gen.px(filled, (95, 50)), gen.BLUE)


def test_exif_orientation_is_applied(storage: LocalStorage) -> None:
    # Stored 200x100, red left; orientation 6 means "rotate 90 degrees clockwise to display".
    (storage.root / "rot.jpg").write_bytes(gen.jpeg_with_orientation(gen.halves((200, 100)), 6))
    result = resize(storage, source_path="rot.jpg", dest_path="up.jpg", width=50)
    out = gen.opened(storage.root / "up.jpg")
    assert (result["width"], result["height"]) == (50, 100) == out.size
    assert gen.close_to(gen.px(out, (25, 10)), gen.RED)  # the left half is now on top
    assert gen.close_to(gen.px(out, (25, 90)), gen.BLUE)
    assert out.getexif().get(0x0112) in (None, 1)


def test_alpha_survives_png_and_flattens_on_the_background_for_jpeg(
    storage: LocalStorage,
) -> None:
    gen.save(gen.rgba_circle((200, 200)), storage.root / "a.png")
    resize(storage, source_path="a.png", dest_path="a-out.png", width=100)
    resize(storage, source_path="a.png", dest_path="a-out.jpg", width=100, background="#000080")
    png, jpeg = gen.opened(storage.root / "a-out.png"), gen.opened(storage.root / "a-out.jpg")
    assert png.mode == "RGBA" and gen.px(png, (2, 2))[3] == 0
    assert gen.px(png, (50, 50)) == (255, 0, 0, 255)
    assert jpeg.mode == "RGB" and gen.close_to(gen.px(jpeg, (2, 2)), (0, 0, 128), 12)
    assert gen.close_to(gen.px(jpeg, (50, 50)), gen.RED)
    # Premultiplied resampling: no green from the transparent area bleeds into the edge.
    edge = [gen.px(png, (x, 50)) for x in range(20, 30)]
    assert all(p[1] < 40 for p in edge if p[3] > 0), edge


def test_palette_transparency_cmyk_and_16_bit(storage: LocalStorage) -> None:
    gen.save(gen.palette_with_transparency((100, 100)), storage.root / "p.png")
    gen.save(Image.new("CMYK", (100, 100), (0, 255, 255, 0)), storage.root / "c.jpg")
    gen.save(gen.gray16((100, 100), 32896), storage.root / "g16.png")
    resize(storage, source_path="p.png", dest_path="p-out.png", width=50)
    resize(storage, source_path="c.jpg", dest_path="c-out.jpg", width=50)
    resize(storage, source_path="g16.png", dest_path="g16-out.png", width=50)
    p = gen.opened(storage.root / "p-out.png")
    assert p.mode == "RGBA" and gen.px(p, (1, 1))[3] == 0 and gen.px(p, (25, 25))[3] == 255
    c = gen.opened(storage.root / "c-out.jpg")
    assert c.mode == "RGB" and gen.close_to(gen.px(c, (25, 25)), gen.RED)
    g = gen.opened(storage.root / "g16-out.png")
    assert g.mode == "L" and abs(gen.px(g, (25, 25)) - 128) <= 1  # scaled, not clipped to 255


def test_animated_gif_first_frame_or_all_frames(storage: LocalStorage) -> None:
    colors = [gen.RED, (0, 255, 0), gen.BLUE]
    (storage.root / "anim.gif").write_bytes(gen.animated_gif((60, 40), colors))
    first = resize(storage, source_path="anim.gif", dest_path="first.png", width=30)
    every = resize(storage, source_path="anim.gif", dest_path="all.gif", width=30, frames="all")
    assert first["frames"] == 1 and every["frames"] == 3
    with Image.open(storage.root / "all.gif") as out:
        assert getattr(out, "n_frames", 1) == 3 and out.size == (30, 20)
        seen = []
        for index in range(3):
            out.seek(index)
            seen.append(gen.px(out.convert("RGB"), (15, 10)))
    assert all(gen.close_to(s, c) for s, c in zip(seen, colors, strict=True)), seen
    with pytest.raises(ValidationError, match="animated output"):
        parse_resize(
            (),
            {"source_path": "anim.gif", "dest_path": "x.jpg", "width": 5, "frames": "all"},
            LIMITS,
        )


def test_icc_profile_is_kept_and_stripped_on_request(storage: LocalStorage) -> None:
    profile = gen.srgb_profile()
    gen.save(gen.photo((200, 150)), storage.root / "icc.jpg", icc_profile=profile)
    resize(storage, source_path="icc.jpg", dest_path="kept.jpg", width=100)
    compress_kwargs = {"source_path": "icc.jpg", "dest_path": "bare.jpg", "strip_metadata": True}
    jobs.compress(parse_compress((), compress_kwargs, LIMITS), storage, LIMITS)
    assert gen.opened(storage.root / "kept.jpg").info.get("icc_profile") == profile
    assert not gen.opened(storage.root / "bare.jpg").info.get("icc_profile")


def test_watermark_text_and_image_are_visible_where_placed(storage: LocalStorage) -> None:
    gen.save(Image.new("RGB", (300, 200), (255, 255, 255)), storage.root / "white.png")
    gen.save(Image.new("RGBA", (40, 40), (0, 0, 255, 255)), storage.root / "mark.png")
    text = {
        "source_path": "white.png",
        "dest_path": "t.png",
        "text": "SAMPLE",
        "color": "red",
        "opacity": 1.0,
        "font_size": 30,
        "position": "bottom-right",
    }
    jobs.watermark(parse_watermark((), text, LIMITS), storage, LIMITS)
    image = {
        "source_path": "white.png",
        "dest_path": "i.png",
        "watermark_path": "mark.png",
        "opacity": 0.5,
        "position": "top-left",
        "margin": 10,
    }
    jobs.watermark(parse_watermark((), image, LIMITS), storage, LIMITS)
    t = gen.opened(storage.root / "t.png")
    reds = [gen.px(t, (x, y)) for x in range(150, 300) for y in range(140, 200)]
    assert any(p[0] > 200 and p[1] < 80 for p in reds)  # red ink bottom right
    assert t.crop((0, 0, 150, 100)).getcolors() == [(150 * 100, (255, 255, 255))]
    i = gen.opened(storage.root / "i.png")
    assert gen.close_to(gen.px(i, (30, 30)), (127, 127, 255), 3)  # half-transparent blue
    assert gen.px(i, (5, 5)) == gen.px(i, (60, 60)) == (255, 255, 255)


def test_tiled_watermark_covers_every_quadrant(storage: LocalStorage) -> None:
    gen.save(Image.new("RGB", (400, 400), (255, 255, 255)), storage.root / "w.jpg")
    kwargs = {
        "source_path": "w.jpg",
        "dest_path": "tiled.png",
        "text": "kit",
        "color": "black",
        "opacity": 1.0,
        "position": "tiled",
        "font_size": 20,
        "margin": 20,
    }
    jobs.watermark(parse_watermark((), kwargs, LIMITS), storage, LIMITS)
    out = gen.opened(storage.root / "tiled.png").convert("L")
    for box in ((0, 0, 200, 200), (200, 0, 400, 200), (0, 200, 200, 400), (200, 200, 400, 400)):
        assert gen.px(out.crop(box).resize((1, 1), Image.Resampling.BOX), (0, 0)) < 250, box
        assert min(out.crop(box).tobytes()) < 100, box


def test_compress_formats_and_target_size(storage: LocalStorage) -> None:
    gen.save(gen.photo((400, 300)), storage.root / "p.png")
    full = jobs.compress(
        parse_compress((), {"source_path": "p.png", "dest_path": "q.jpg", "quality": 95}, LIMITS),
        storage,
        LIMITS,
    )
    target = full["bytes"] // 3
    small = jobs.compress(
        parse_compress(
            (), {"source_path": "p.png", "dest_path": "t.jpg", "target_bytes": target}, LIMITS
        ),
        storage,
        LIMITS,
    )
    assert small["target_met"] and small["bytes"] <= target < full["bytes"]
    assert 10 <= small["quality"] < 95
    lossless = jobs.compress(
        parse_compress(
            (), {"source_path": "p.png", "dest_path": "l.webp", "lossless": True}, LIMITS
        ),
        storage,
        LIMITS,
    )
    assert lossless["format"] == "webp"
    original = gen.opened(storage.root / "p.png")
    assert gen.opened(storage.root / "l.webp").convert("RGB").tobytes() == original.tobytes()
    impossible = jobs.compress(
        parse_compress(
            (), {"source_path": "p.png", "dest_path": "x.webp", "target_bytes": 50}, LIMITS
        ),
        storage,
        LIMITS,
    )
    assert impossible["target_met"] is False and impossible["quality"] == 10


def test_thumbnails_from_one_decode(storage: LocalStorage) -> None:
    gen.save(gen.photo((800, 600)), storage.root / "big.jpg")
    kwargs = {
        "source_path": "big.jpg",
        "dest_path": "th/big_{size}.webp",
        "sizes": [64, [200, 100], 1000],
        "mode": "fit",
    }
    result = jobs.thumbnail(parse_thumbnail((), kwargs, LIMITS), storage, LIMITS)
    sizes = {(t["path"], t["width"], t["height"]) for t in result["thumbnails"]}
    assert sizes == {
        ("th/big_64x64.webp", 64, 48),
        ("th/big_200x100.webp", 133, 100),
        ("th/big_1000x1000.webp", 800, 600),
    }
    for path, width, height in sizes:
        assert gen.opened(storage.root / path).size == (width, height)


# -- hostile input -----------------------------------------------------------------------------


def hostile_files(root: Path) -> dict[str, str]:
    """name -> what the refusal says."""
    (root / "bomb.png").write_bytes(gen.png_header_only(20_000, 20_000))  # 400 Mpx claimed
    gen.save(Image.new("L", (3000, 3000)), root / "big-blank.png")  # 9 Mpx > LIMITS' 4 Mpx
    (root / "truncated.jpg").write_bytes(gen.jpeg_bytes(gen.photo((300, 200)))[:2000])
    (root / "liar.jpg").write_bytes(gen.png_bytes(gen.halves((20, 20))))
    (root / "empty.png").write_bytes(b"")
    (root / "zero.png").write_bytes(gen.png_header_only(0, 10))
    (root / "text.png").write_bytes(b"hello, I am not an image")
    (root / "tiff.png").write_bytes(b"")
    gen.save(gen.halves((20, 20)), root / "disguised.tif", "TIFF")
    return {
        "bomb.png": "limit",
        "big-blank.png": "decompression bomb",
        "truncated.jpg": "truncated or corrupt",
        "liar.jpg": "content is PNG",
        "empty.png": "empty",
        "zero.png": "not a JPEG, PNG, GIF, WEBP image",
        "text.png": "not a JPEG, PNG, GIF, WEBP image",
        "disguised.tif": "not a JPEG, PNG, GIF, WEBP image",  # TIFF is not an allowed decoder
        "missing.jpg": "does not exist",
    }


def test_every_hostile_input_is_a_clear_permanent_error(storage: LocalStorage) -> None:
    for name, message in hostile_files(storage.root).items():
        with pytest.raises(PermanentError, match=message):
            resize(storage, source_path=name, dest_path="out.png", width=10)
    assert not (storage.root / "out.png").exists()


def test_huge_requested_dimensions_are_refused(storage: LocalStorage) -> None:
    gen.save(gen.halves((40, 20)), storage.root / "s.png")
    with pytest.raises(ValidationError, match=r"KIT_IMAGE_MAX_DIMENSION|accepts"):
        parse_resize((), {"source_path": "s.png", "dest_path": "o.png", "width": 50_000}, LIMITS)
    with pytest.raises(ValidationError, match="KIT_IMAGE_MAX_PIXELS"):
        parse_resize(
            (),
            {
                "source_path": "s.png",
                "dest_path": "o.png",
                "width": 4000,
                "height": 4000,
                "mode": "exact",
            },
            LIMITS,
        )
    with pytest.raises(ValidationError, match="KIT_IMAGE_MAX_PIXELS"):  # known only after decode
        resize(storage, source_path="s.png", dest_path="o.png", width=4900, upscale=True)
