"""Removal of old files and archived-task records, confined to the configured roots.

Only regular files older than the retention are removed, found by walking each root without
following symbolic links, so a link pointing elsewhere can never lead the clean-up outside its
roots (the link itself, if old, is removed; its target is not). Empty directories left behind
are removed too, the roots themselves never.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from project.retries.archive import Archive

__all__ = ["CleanupReport", "cutoff_for", "remove_old_archive_records", "remove_old_files"]


@dataclass
class CleanupReport:
    files: int = 0
    bytes: int = 0
    archived_records: int = 0
    per_root: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "archived_records": self.archived_records,
            "per_root": dict(self.per_root),
        }


def remove_old_files(root: Path, cutoff: float, report: CleanupReport) -> None:
    """Delete files under ``root`` last modified before ``cutoff`` (Unix seconds)."""
    if not root.is_dir():
        report.per_root[str(root)] = 0
        return
    removed = 0
    for directory, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(directory, d))]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                continue
            if info.st_mtime < cutoff:
                os.unlink(path)
                removed += 1
                report.bytes += info.st_size if stat.S_ISREG(info.st_mode) else 0
        if Path(directory) != root and not os.listdir(directory):
            os.rmdir(directory)
    report.files += removed
    report.per_root[str(root)] = removed


def remove_old_archive_records(archive: Archive, cutoff: float) -> int:
    return archive.delete_older_than(cutoff)


def cutoff_for(retention_days: float, now: float | None = None) -> float:
    return (time.time() if now is None else now) - retention_days * 86_400
