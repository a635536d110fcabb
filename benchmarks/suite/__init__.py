"""``all``: every benchmark in one run and one table with the targets judged."""

from __future__ import annotations
