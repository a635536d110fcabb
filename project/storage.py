"""Where image tasks read and write: a :class:`Storage` protocol and :class:`LocalStorage`.

Payload paths are untrusted: they come from whoever enqueues. They are therefore always
*relative* to the storage root, cleaned by :func:`clean_path` (the same check runs at enqueue
time and in the worker), and resolved so that nothing reaches outside the root: no ``..``, no
absolute paths, no NUL or control characters, and no symlink pointing outside. Opening walks
the resolved path one directory at a time with ``O_NOFOLLOW`` from a descriptor of the root, so
a symlink swapped in between the check and the open is refused too, not followed.

Writes are atomic: a temporary file in the destination directory, flushed to disk, then renamed
over the destination. A crash leaves the old file or the new one, never half an image.

Errors carry the *relative* path only: messages reach the archive, logs and spans, and the
absolute layout of the server is nobody's business.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from project.config import current
from project.config.env import Env
from project.errors import PermanentError, TransientError, ValidationError

__all__ = [
    "MAX_PATH_LENGTH",
    "LocalStorage",
    "Storage",
    "StorageSettings",
    "clean_path",
    "default_storage",
]

MAX_PATH_LENGTH = 1024
DEFAULT_STORAGE_ROOT = "var/images"  # the catalog's paths are relative to this directory
#: Write failures that may clear by themselves (space freed, descriptors closed): retried.
_TRANSIENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EAGAIN, errno.EMFILE, errno.ENFILE, errno.EINTR}
)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def clean_path(path: object, argument: str = "path") -> str:
    """``path`` as a normalised relative path (``a/b.jpg``), or :class:`ValidationError`.

    Purely syntactic, so producers can run it without access to the storage.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValidationError(f"{argument} must be a non-empty relative path string")
    if len(path) > MAX_PATH_LENGTH:
        raise ValidationError(f"{argument} is longer than {MAX_PATH_LENGTH} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise ValidationError(f"{argument} contains a NUL or control character")
    if "\\" in path:
        raise ValidationError(f"{argument} contains a backslash; use '/' between directories")
    if path.startswith("/") or path.startswith("~"):
        raise ValidationError(f"{argument} must be relative to the storage root, not absolute")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValidationError(f"{argument} must not contain '..'")
    if not parts:
        raise ValidationError(f"{argument} names the storage root itself, not a file")
    return "/".join(parts)


@runtime_checkable
class Storage(Protocol):
    """What image tasks need from a store of files addressed by relative paths."""

    def read(self, path: str, max_bytes: int) -> bytes:
        """The file's content; PermanentError if it is missing or larger than ``max_bytes``."""
        ...

    def write(self, path: str, data: bytes) -> None:
        """Replace the file atomically, creating directories as needed."""
        ...

    def exists(self, path: str) -> bool: ...


class LocalStorage:
    """Files under one local directory, ``root``; created on the first write if missing."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    # -- resolution --------------------------------------------------------------------------

    def _inside(self, path: str, argument: str) -> list[str]:
        """The components of the real location of ``path``, checked to be under the root."""
        relative = clean_path(path, argument)
        resolved = (self.root / relative).resolve()
        try:
            inside = resolved.relative_to(self.root)
        except ValueError:
            raise ValidationError(
                f"{argument} {relative!r} leads outside the storage root (through a symlink)"
            ) from None
        if not inside.parts:
            raise ValidationError(f"{argument} {relative!r} resolves to the storage root itself")
        return list(inside.parts)

    def _open_dir(self, parts: list[str], *, create: bool, shown: str) -> int:
        """A descriptor of ``root/parts``, walked without following any symlink."""
        try:
            fd = os.open(self.root, _DIR_FLAGS)
        except OSError as exc:
            raise _storage_error(exc, shown) from exc
        try:
            for part in parts:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as exc:
            os.close(fd)
            raise _storage_error(exc, shown) from exc
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- the protocol ------------------------------------------------------------------------

    def read(self, path: str, max_bytes: int, argument: str = "source_path") -> bytes:
        shown = clean_path(path, argument)
        *dirs, name = self._inside(path, argument)
        dir_fd = self._open_dir(dirs, create=False, shown=shown)
        try:
            # O_NONBLOCK: opening a FIFO planted in the storage must not hang the worker.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            raise _storage_error(exc, shown) from exc
        finally:
            os.close(dir_fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise PermanentError(f"{argument} {shown!r} is not a regular file")
        with os.fdopen(fd, "rb") as handle:
            if info.st_size > max_bytes:
                raise PermanentError(
                    f"{argument} {shown!r} is {info.st_size} bytes, over the limit of "
                    f"{max_bytes} (KIT_IMAGE_MAX_BYTES)"
                )
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:  # it grew while we read it
            raise PermanentError(f"{argument} {shown!r} is over the limit of {max_bytes} bytes")
        return data

    def write(self, path: str, data: bytes, argument: str = "dest_path") -> None:
        shown = clean_path(path, argument)
        self.root.mkdir(parents=True, exist_ok=True)
        *dirs, name = self._inside(path, argument)
        dir_fd = self._open_dir(dirs, create=True, shown=shown)
        temp = f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
                dir_fd=dir_fd,
            )
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                _unlink_quietly(temp, dir_fd)
                raise
            os.fsync(dir_fd)  # the rename itself survives a power cut
        except OSError as exc:
            raise _storage_error(exc, shown) from exc
        finally:
            os.close(dir_fd)

    def exists(self, path: str) -> bool:
        try:
            parts = self._inside(path, "path")
        except ValidationError:
            return False
        return self.root.joinpath(*parts).is_file()


def _unlink_quietly(name: str, dir_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


def _storage_error(exc: OSError, shown: str) -> Exception:
    """Map an OS error to the kit's retry policy, with the relative path in the message."""
    if isinstance(exc, FileNotFoundError):
        return PermanentError(f"{shown!r} does not exist in the storage")
    if exc.errno == errno.ELOOP:
        return ValidationError(f"{shown!r} changed to a symlink while it was opened; refused")
    if isinstance(exc, NotADirectoryError | IsADirectoryError):
        return PermanentError(f"{shown!r} is not a regular file path ({exc.strerror})")
    if exc.errno in _TRANSIENT_ERRNOS:
        return TransientError(f"storage error on {shown!r}: {exc.strerror}; will retry")
    return PermanentError(f"storage error on {shown!r}: {exc.strerror or exc}")


@dataclass(frozen=True)
class StorageSettings:
    root: str = DEFAULT_STORAGE_ROOT

    @classmethod
    def from_env(cls, env: Env) -> StorageSettings:
        return cls(root=env.text("KIT_IMAGE_STORAGE_ROOT", DEFAULT_STORAGE_ROOT))


def default_storage() -> LocalStorage:
    """The storage configured for this process (``KIT_IMAGE_STORAGE_ROOT``)."""
    return LocalStorage(current(StorageSettings).root)
