"""``python -m examples.flask_app [--port N]``: the example on werkzeug's server."""

from __future__ import annotations

import argparse
import signal
import sys

from examples.flask_app.app import create_app

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8000)
options = parser.parse_args()
# SIGTERM exits through atexit, where OpenTelemetry flushes the last spans and metrics.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
create_app().run(host=options.host, port=options.port, threaded=True)
