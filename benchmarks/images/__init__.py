"""JPEG decode+resize: the kit's path against a naive full decode (``images``)."""

from __future__ import annotations
