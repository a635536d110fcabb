"""What every benchmark shares: processes, measuring, the interleaved runner, the report writer."""

from __future__ import annotations
