"""The one interleaved-repeat runner: every subject once per round, ``repeat`` rounds.

Why interleaved (A, B, C, A, B, C ...) rather than each subject's repetitions back to back:
drift on the machine (thermal throttling, a neighbour's test run) is then shared by every
subject instead of landing on whichever ran last, so the medians stay comparable. Every
benchmark that repeats runs through :func:`interleave`; only the run itself (what one
scenario, variant or layout does once) differs, and that is the caller's ``run`` function.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Progress", "Turn", "interleave", "order_note", "stderr_progress"]

S = TypeVar("S")
R = TypeVar("R")

Progress = Callable[[str], None]


def stderr_progress(line: str) -> None:
    """Progress goes to stderr so stdout holds only the report."""
    print(line, file=sys.stderr)


@dataclass(frozen=True)
class Turn:
    """One run's place in the interleaved sequence."""

    repeat: int  # 0-based round
    order: int  # 0-based position among all runs: a drift shows as a trend in it
    total: int  # runs in the whole sequence


def interleave(
    subjects: Sequence[S],
    repeat: int,
    run: Callable[[S, Turn], R],
    describe: Callable[[S, R], Iterable[str]],
    progress: Progress = stderr_progress,
) -> list[R]:
    """``run(subject, turn)`` for every subject, ``repeat`` rounds, in order; the results.

    After each run, ``describe`` gives its progress lines: the first is numbered
    ``[n/total]``, any further ones (worker log errors, say) follow as they are.
    """
    results: list[R] = []
    total = repeat * len(subjects)
    for rep in range(repeat):
        for subject in subjects:
            turn = Turn(repeat=rep, order=len(results), total=total)
            result = run(subject, turn)
            results.append(result)
            for index, line in enumerate(describe(subject, result)):
                progress(f"[{turn.order + 1}/{total}] {line}" if index == 0 else line)
    return results


def order_note(repeat: int, keys: Iterable[str]) -> str:
    """The run order, as each report's parameters state it."""
    return f"{repeat} interleaved round(s) of: " + ", ".join(keys)
