"""A storage root per test, for in-thread workers (the settings object) and subprocesses (env)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def image_root(tmp_path: Path) -> Iterator[Path]:
    """``KIT_IMAGE_STORAGE_ROOT`` for this test, with a low pixel limit (bombs stay cheap)."""
    from project import config
    from project.storage import StorageSettings
    from tasks.images.settings import ImageSettings

    root = tmp_path / "images"
    root.mkdir()
    with (
        config.override(StorageSettings(root=str(root))),
        config.override(ImageSettings(max_pixels=4_000_000)),
    ):
        yield root
