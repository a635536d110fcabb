"""A storage root per test, for in-thread workers (the settings object) and subprocesses (env)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def image_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``KIT_IMAGE_STORAGE_ROOT`` for this test, with a low pixel limit (bombs stay cheap)."""
    from project import config

    root = tmp_path / "images"
    root.mkdir()
    settings = dataclasses.replace(
        config.current_settings(), image_storage_root=str(root), image_max_pixels=4_000_000
    )
    monkeypatch.setattr(config, "_current", settings)
    yield root
