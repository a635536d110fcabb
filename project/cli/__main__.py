"""``python -m project.cli``: the ``kit`` command without its console script."""

from __future__ import annotations

from project.cli import main

main()
