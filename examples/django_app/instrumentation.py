"""Telemetry for the Django process: the kit's producer set-up plus Django's instrumentation."""

from __future__ import annotations

from opentelemetry.instrumentation.django import DjangoInstrumentor

from project.telemetry import setup_telemetry


def instrument() -> None:
    setup_telemetry("producer")
    DjangoInstrumentor().instrument()
