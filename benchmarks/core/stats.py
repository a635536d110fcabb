"""Medians, min-max spreads and ratios: how every benchmark sums up its repetitions.

The median, not the mean: one run slowed by a noisy neighbour should not move the result. The
min-max spread is reported next to it so a reader can tell a real difference between two
scenarios from noise: when their ranges overlap, the medians' order is not to be trusted.
"""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from benchmarks.core.jsonable import record

__all__ = ["RateSummary", "ratio", "summarize"]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class RateSummary:
    """The rates (tasks/s, enqueues/s ...) of one subject's repetitions, in run order."""

    rates: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def low(self) -> float:
        return min(self.rates)

    @property
    def high(self) -> float:
        return max(self.rates)

    @property
    def spread_pct(self) -> float:
        """(max - min) / median, in percent."""
        return 100.0 * (self.high - self.low) / self.median if self.median else 0.0

    def overlaps(self, other: RateSummary) -> bool:
        """Both min-max ranges overlap (with more than one run): a ratio of the two medians
        is within the run-to-run noise."""
        return len(self.rates) > 1 and self.low <= other.high and other.low <= self.high

    def as_dict(self) -> dict[str, object]:
        return record(self, "rates", "median", "min=low", "max=high", "spread_pct")


def summarize(rates: Iterable[tuple[K, float]]) -> dict[K, RateSummary]:
    """(key, rate) pairs in run order -> a summary per key, keys in first-run order."""
    grouped: dict[K, list[float]] = {}
    for key, rate in rates:
        grouped.setdefault(key, []).append(rate)
    return {key: RateSummary(values) for key, values in grouped.items()}


def ratio(value: float, reference: RateSummary | None) -> float | None:
    """``value`` over the reference's median; None when there is no reference."""
    return value / reference.median if reference and reference.median else None
