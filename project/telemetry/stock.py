"""The stock Celery instrumentation's receivers, swapped for the kit's and back.

The kit makes the stock ``opentelemetry-instrumentation-celery`` spans itself (the publish side
in :mod:`project.telemetry.producer`, the attempt side in :mod:`project.telemetry.consumer`), in
the stock instrumentation's scope so queries by scope still find them. Each side takes the
stock receivers of its signals out while its own are connected, and puts them back when it
disconnects, if the stock instrumentation is still on: instrument and uninstrument stay
symmetric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["STOCK_SCHEMA", "STOCK_SCOPE", "Receivers", "replace_stock", "restore_stock"]

#: The instrumentation scope of the stock spans, kept so queries by scope still find them.
STOCK_SCOPE = "opentelemetry.instrumentation.celery"
STOCK_SCHEMA = "https://opentelemetry.io/schemas/1.11.0"

#: (signal, the stock instrumentor's receiver's name on it, the kit's receiver) per signal.
Receivers = Sequence[tuple[Any, str, Callable[..., None]]]


def replace_stock(instrumentor: Any, receivers: Receivers) -> None:
    """Disconnect the stock receiver of each signal and connect the kit's."""
    for signal, stock, ours in receivers:
        signal.disconnect(getattr(instrumentor, stock))
        signal.connect(ours, weak=False)


def restore_stock(instrumentor: Any, receivers: Receivers) -> None:
    """Disconnect the kit's receivers; the stock ones come back if the stock instrumentation
    is still on."""
    instrumented = getattr(instrumentor, "is_instrumented_by_opentelemetry", False)
    for signal, stock, ours in receivers:
        signal.disconnect(ours)
        if instrumented:
            signal.connect(getattr(instrumentor, stock), weak=False)
