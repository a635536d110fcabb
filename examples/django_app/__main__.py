"""``python -m examples.django_app [--port N]``: the example on Django's development server.

In production, call ``instrument()`` from your ``wsgi.py``/``asgi.py`` before the application
object is created.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from examples.django_app.instrumentation import instrument

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--port", type=int, default=8000)
options = parser.parse_args()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
instrument()
# SIGTERM exits through atexit, where OpenTelemetry flushes the last spans and metrics.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

from django.core.management import execute_from_command_line  # noqa: E402

execute_from_command_line(["manage", "runserver", "--noreload", f"127.0.0.1:{options.port}"])
