"""The overview's chart: processed and failed tasks per minute over the last hour.

Drawn on the server as inline SVG (no JavaScript, no image request; presentation attributes
only, so the Content-Security-Policy needs no inline styles): per minute, a green bar for the
processed tasks and a red one beside it for the failed, from :mod:`project.ops.counters`.
"""

from __future__ import annotations

from markupsafe import Markup, escape

__all__ = ["MINUTES", "svg"]

MINUTES = 60
WIDTH, HEIGHT, LEFT, BOTTOM = 600, 140, 40, 18


def svg(series: dict[str, list[int]]) -> Markup:
    processed, failed = series["processed"], series["failed"]
    top = max([*processed, *failed, 1])
    step = (WIDTH - LEFT) / max(1, len(processed))
    plot = HEIGHT - BOTTOM

    half = max(1.0, step / 2 - 0.5)

    def bar(index: int, value: int, colour: str, shift: float) -> str:
        height = plot * value / top
        x = LEFT + index * step + shift
        return (
            f'<rect x="{x:.1f}" y="{plot - height:.1f}" width="{half:.1f}" '
            f'height="{height:.1f}" fill="{colour}"/>'
        )

    bars = [bar(i, v, "#3a7d44", 0.0) for i, v in enumerate(processed) if v]
    bars += [bar(i, v, "#c0392b", step / 2) for i, v in enumerate(failed) if v]
    summary = f"{sum(processed)} processed, {sum(failed)} failed in the last {len(processed)} min"
    return Markup(
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" data-processed="{sum(processed)}" data-failed="{sum(failed)}">'
        f"<title>{escape(summary)}</title>"
        f'<line x1="{LEFT}" y1="{plot}" x2="{WIDTH}" y2="{plot}" stroke="#888"/>'
        f'<text x="{LEFT - 4}" y="10" text-anchor="end" font-size="10" fill="#555">{top}</text>'
        f'<text x="{LEFT - 4}" y="{plot}" text-anchor="end" font-size="10" fill="#555">0</text>'
        f'<text x="{LEFT}" y="{HEIGHT - 4}" font-size="10" fill="#555">-{len(processed)} min</text>'
        f'<text x="{WIDTH}" y="{HEIGHT - 4}" text-anchor="end" font-size="10" fill="#555">now'
        f"</text>{''.join(bars)}</svg>"
    )
