"""The suite's chart: processing throughput per layout, grouped by task kind, as a PNG.

Drawn from the suite's JSON payload (the same figures as ``all.json``, so a chart can be
redrawn from an old result: ``write_chart(json.load(...), path)``), with matplotlib's Agg
backend (no display). One group of bars per task kind (no-op, 10 ms I/O, 5 ms CPU), one bar
per layout in the suite's order, the median with the min-max range as an error bar. The
README shows ``benchmarks/results/throughput.png`` from the last full run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CHART_NAME", "write_chart"]

CHART_NAME = "throughput.png"
KIND_TITLES = {"noop": "no-op", "sleep": "10 ms I/O", "cpu": "5 ms CPU"}
WIDTH_IN, HEIGHT_IN, DPI = 12.0, 6.0, 100


def write_chart(payload: Mapping[str, Any], path: Path) -> Path:
    """Draw ``payload["processing"]`` (one entry per layout and kind: median, min, max) into
    ``path``; returns it."""
    import matplotlib  # the bench extra; imported here, only when a chart is drawn

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rates = {(p["layout"], p["kind"]): p for p in payload["processing"]}
    labels = {x["key"]: x["label"] for x in payload["layouts"]}
    layouts = [x["key"] for x in payload["layouts"] if any(key == x["key"] for key, _ in rates)]
    kinds = [kind for kind in KIND_TITLES if any(k == kind for _, k in rates)]
    figure, axes = pyplot.subplots(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    width = 0.8 / max(1, len(layouts))
    for index, layout in enumerate(layouts):
        xs, heights, low, high = [], [], [], []
        for position, kind in enumerate(kinds):
            if (entry := rates.get((layout, kind))) is not None:
                xs.append(position - 0.4 + width * (index + 0.5))
                heights.append(entry["median"])
                low.append(entry["median"] - entry["min"])
                high.append(entry["max"] - entry["median"])
        bars = axes.bar(
            xs, heights, width, yerr=[low, high], capsize=2, label=labels.get(layout, layout)
        )
        axes.bar_label(bars, fmt="{:,.0f}", fontsize=7, padding=2, rotation=90)
    axes.set_xticks(range(len(kinds)), [KIND_TITLES[kind] for kind in kinds])
    axes.set_ylabel("tasks/s (median, min-max)")
    machine = payload.get("machine", {})
    load = str(machine.get("load_average_at_start", "?")).split(" ")[0]
    axes.set_title(
        f"Processing throughput per layout: {machine.get('usable_cpus')} CPUs, load {load} "
        f"at the start, {machine.get('date_utc')}",
        fontsize=10,
    )
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=3)
    axes.margins(y=0.15)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot.close(figure)
    return path
