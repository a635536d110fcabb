"""The cyclic garbage collector paused while a bulk call runs, however many calls overlap."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collection_paused"]

_pause_lock = threading.Lock()
_pauses = 0  # bulk calls running in this process
_resume = False  # whether the collector ran before the first of them


@contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while a bulk call runs (it resumes as the call ends).

    A call keeps every task's signature, id and result handle until it returns, tens of
    thousands of tracked objects, and the collector's full passes, triggered by their number,
    went over all of them (and the rest of the process) again and again: a fifth of the time of
    a 20,000-task call. What the call makes and drops is freed by reference counting as ever.
    """
    global _pauses, _resume
    # Calls may overlap (a web server's threads): the collector resumes when the last one
    # ends, and only if it was running when the first one began.
    with _pause_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()
