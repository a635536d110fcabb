"""What telemetry costs the kit's worker: off, exporting over OTLP, collector down, no endpoint."""

from __future__ import annotations
