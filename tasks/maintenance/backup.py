"""Database backups: consistent, compressed, verified, written atomically, rotated.

SQLite is copied with its online backup API (a consistent snapshot while writers continue) and
gzipped; PostgreSQL with ``pg_dump --format=custom`` (compressed, restorable with
``pg_restore``). Either way the file is written under a temporary name, verified (SQLite:
``PRAGMA integrity_check`` on the decompressed copy; PostgreSQL: ``pg_restore --list``), and
only then renamed into place, so a crash never leaves a backup that looks complete and is not.
The newest ``keep`` backups of each database are kept.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from project.errors import PermanentError, TransientError

__all__ = ["BackupResult", "backup_database", "sqlite_path"]

PG_DUMP_TIMEOUT = 3600  # seconds


@dataclass(frozen=True)
class BackupResult:
    database: str
    path: str
    bytes: int
    kind: str
    removed: list[str]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def sqlite_path(url: str) -> Path:
    """``sqlite:///rel.db`` is relative to the working directory, ``sqlite:////abs.db`` not."""
    path = unquote(urlsplit(url).path)
    if not path or path == "/":
        raise PermanentError(f"{url!r} names no SQLite file")
    return Path(path[1:])  # "/rel.db" -> rel.db, "//abs/x.db" -> /abs/x.db


def backup_database(name: str, url: str, directory: Path, keep: int) -> BackupResult:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        target = directory / f"{name}-{stamp}.sqlite3.gz"
        kind = "sqlite"
        _backup_sqlite(sqlite_path(url), target)
    elif scheme in ("postgresql", "postgres"):
        target = directory / f"{name}-{stamp}.pgdump"
        kind = "postgresql"
        _backup_postgres(url, target)
    else:
        raise PermanentError(f"cannot back up {scheme}:// databases (sqlite or postgresql)")
    removed = _rotate(directory, name, keep)
    return BackupResult(name, str(target), target.stat().st_size, kind, removed)


def _backup_sqlite(source: Path, target: Path) -> None:
    if not source.is_file():
        raise PermanentError(f"SQLite database {source} does not exist")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".backup-") as work:
        snapshot = Path(work) / "snapshot.sqlite3"
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(snapshot)
        try:
            src.backup(dst)
        except sqlite3.OperationalError as exc:  # locked or busy: worth another try
            raise TransientError(f"SQLite backup of {source} failed: {exc}") from exc
        finally:
            src.close()
            dst.close()
        packed = Path(work) / "snapshot.sqlite3.gz"
        with snapshot.open("rb") as raw, gzip.open(packed, "wb", compresslevel=6) as out:
            shutil.copyfileobj(raw, out)
        _verify_sqlite(packed, Path(work))
        os.replace(packed, target)


def _verify_sqlite(packed: Path, work: Path) -> None:
    restored = work / "verify.sqlite3"
    with gzip.open(packed, "rb") as src, restored.open("wb") as out:
        shutil.copyfileobj(src, out)
    with sqlite3.connect(restored) as db:
        (verdict,) = db.execute("PRAGMA integrity_check").fetchone()
    if verdict != "ok":
        raise TransientError(f"SQLite backup failed verification: {verdict}")


def _backup_postgres(url: str, target: Path) -> None:
    pg_dump, pg_restore = shutil.which("pg_dump"), shutil.which("pg_restore")
    if not pg_dump or not pg_restore:
        raise PermanentError(
            "pg_dump/pg_restore not found: install the PostgreSQL client "
            "(apt-get install postgresql-client)"
        )
    partial = target.with_name(f".{target.name}.partial")
    try:
        done = subprocess.run(
            [pg_dump, "--format=custom", "--no-password", f"--file={partial}", url],
            capture_output=True,
            text=True,
            timeout=PG_DUMP_TIMEOUT,
        )
        if done.returncode != 0:
            message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
            if "could not connect" in done.stderr or "Connection refused" in done.stderr:
                raise TransientError(f"pg_dump could not connect: {message}")
            raise PermanentError(f"pg_dump failed: {message}")
        listed = subprocess.run(
            [pg_restore, "--list", str(partial)], capture_output=True, text=True, timeout=600
        )
        if listed.returncode != 0:
            raise TransientError(f"backup failed verification: {listed.stderr.strip()}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _rotate(directory: Path, name: str, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` backups of ``name`` (timestamps sort by name)."""
    backups = sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.name.startswith(f"{name}-") and not p.name.startswith(".")
    )
    removed = backups[:-keep] if len(backups) > keep else []
    for path in removed:
        path.unlink(missing_ok=True)
    return [str(p) for p in removed]
