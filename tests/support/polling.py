"""Waiting on a condition with a deadline: the plugin's helper, under the name the kit's tests
have always imported."""

from __future__ import annotations

from project.testing.polling import eventually

__all__ = ["eventually"]
