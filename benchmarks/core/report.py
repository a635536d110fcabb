"""The one report writer: Markdown tables, the report's skeleton, and the two files.

Every command prints one Markdown report on stdout and writes the same text to
``<name>.md`` and its figures to ``<name>.json`` (machine facts and parameters included, so a
result can be read without the terminal it ran in). Each benchmark decides only its tables'
columns and rows; the layout around them (title, sections, the parameters and machine lists)
and the files are written here, the same way for all.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from benchmarks.core.stats import RateSummary

__all__ = ["bullets", "document", "rate_cells", "table", "times", "write_report"]

_RULE = {"l": "---", "r": "---:"}


def table(
    header: Sequence[str], rows: Iterable[Sequence[object]], align: str, *, padded: bool = False
) -> str:
    """A Markdown table; ``align`` has one letter per column, ``l`` or ``r`` (right-aligned,
    for figures). ``padded`` writes the rule row as ``| --- |`` (the images report's)."""
    if len(align) != len(header):
        raise ValueError(f"{len(header)} columns but align {align!r}")
    rule = [_RULE[a] for a in align]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(rule) + " |" if padded else "|" + "|".join(rule) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def rate_cells(s: RateSummary) -> list[str]:
    """Median, min-max and spread: the three cells every rate table shows for a subject."""
    return [f"{s.median:,.0f}", f"{s.low:,.0f}-{s.high:,.0f}", f"{s.spread_pct:.1f}%"]


def times(value: float | None) -> str:
    """A ratio as ``1.23x``; ``n/a`` when it could not be computed."""
    return "n/a" if value is None else f"{value:.2f}x"


def bullets(items: Mapping[str, object]) -> str:
    """``- name: value`` lines (parameters, machine facts)."""
    return "\n".join(f"- {name}: {value}" for name, value in items.items())


def document(
    title: str,
    *blocks: str,
    params: Mapping[str, object] | None = None,
    facts: Mapping[str, object] | None = None,
) -> str:
    """``# title``, then the non-empty blocks a blank line apart, then the parameters and the
    machine as lists when given."""
    parts = [block for block in blocks if block]
    if params is not None:
        parts.append(f"## Parameters\n\n{bullets(params)}")
    if facts is not None:
        parts.append(f"## Machine\n\n{bullets(facts)}")
    return f"# {title}\n\n" + "\n\n".join(parts) + "\n"


def write_report(
    output_dir: Path, name: str, text: str, payload: Mapping[str, object]
) -> tuple[Path, Path]:
    """Print ``text``, write it to ``<name>.md`` and ``payload`` to ``<name>.json`` in
    ``output_dir``, and say so on stderr."""
    print(text)
    output_dir.mkdir(parents=True, exist_ok=True)
    md_path = output_dir / f"{name}.md"
    json_path = output_dir / f"{name}.json"
    md_path.write_text(text if text.endswith("\n") else text + "\n")
    json_path.write_text(json.dumps(dict(payload), indent=2) + "\n")
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return md_path, json_path
