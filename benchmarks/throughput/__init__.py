"""Worker throughput on no-op tasks (``throughput``): stock Celery, the kit, and the kit
minus one default; its worker apps serve the telemetry and layout benchmarks too."""

from __future__ import annotations
