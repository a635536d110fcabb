"""LocalStorage: relative paths only, nothing outside the root, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from project.errors import PermanentError, TransientError, ValidationError
from project.storage import LocalStorage, Storage, clean_path

ESCAPES = [
    "../secret.jpg",
    "a/../../secret.jpg",
    "a/../b.jpg",  # stays inside, but '..' is refused outright: no clever normalisation
    "/etc/passwd",
    "//etc/passwd",
    "~/x.jpg",
    "a\x00.jpg",
    "a\nb.jpg",
    "a\\..\\b.jpg",
    "",
    "   ",
    ".",
    "./",
    "x" * 2000,
]


@pytest.mark.parametrize("path", ESCAPES)
def test_unsafe_paths_are_refused(path: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        clean_path(path)
    storage = LocalStorage(tmp_path)
    with pytest.raises(ValidationError):
        storage.read(path, 100)
    with pytest.raises(ValidationError):
        storage.write(path, b"x")


@pytest.mark.parametrize("value", [None, 3, b"a.jpg", ["a.jpg"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        clean_path(value)


def test_paths_are_normalised() -> None:
    assert clean_path("a//b/./c.jpg") == "a/b/c.jpg"
    assert clean_path("./c.jpg") == "c.jpg"


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    (root / "link.jpg").symlink_to(outside / "secret.jpg")
    (root / "dir").symlink_to(outside)
    storage = LocalStorage(root)
    for path in ("link.jpg", "dir/secret.jpg"):
        with pytest.raises(ValidationError, match="outside the storage root"):
            storage.read(path, 100)
    with pytest.raises(ValidationError, match="outside the storage root"):
        storage.write("dir/new.jpg", b"x")
    assert not (outside / "new.jpg").exists()
    with pytest.raises(ValidationError, match="outside the storage root"):
        storage.write("link.jpg", b"overwritten")
    assert (outside / "secret.jpg").read_bytes() == b"secret"


def test_symlink_inside_the_root_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.jpg").write_bytes(b"data")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert LocalStorage(tmp_path).read("alias/a.jpg", 100) == b"data"


def test_missing_source_is_permanent_and_does_not_show_the_root(tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as caught:
        LocalStorage(tmp_path).read("nope/a.jpg", 100)
    assert "'nope/a.jpg'" in str(caught.value)
    assert str(tmp_path) not in str(caught.value)
    with pytest.raises(PermanentError):
        LocalStorage(tmp_path / "no-root-yet").read("a.jpg", 100)


def test_directories_fifos_and_oversized_files_are_not_read(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    (tmp_path / "dir.jpg").mkdir()
    os.mkfifo(tmp_path / "fifo.jpg")
    (tmp_path / "big.jpg").write_bytes(b"x" * 101)
    for path in ("dir.jpg", "fifo.jpg"):
        with pytest.raises(PermanentError, match="not a regular file"):
            storage.read(path, 100)
    with pytest.raises(PermanentError, match="over the limit"):
        storage.read("big.jpg", 100)


def test_write_creates_directories_and_replaces_atomically(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    assert isinstance(storage, Storage)
    storage.write("a/b/c.jpg", b"first")
    storage.write("a/b/c.jpg", b"second")
    assert storage.read("a/b/c.jpg", 100) == b"second"
    assert storage.exists("a/b/c.jpg") and not storage.exists("../x")
    assert os.listdir(tmp_path / "root" / "a" / "b") == ["c.jpg"]  # no temp file left


def test_a_crash_while_writing_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path)
    storage.write("out.jpg", b"old")

    def power_cut(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", power_cut)
    with pytest.raises(PermanentError, match="Input/output error"):
        storage.write("out.jpg", b"new" * 1000)
    assert (tmp_path / "out.jpg").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.jpg"]


def test_a_full_disk_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(TransientError):
        LocalStorage(tmp_path).write("out.jpg", b"x")
