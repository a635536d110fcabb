#!/bin/sh
# Container healthcheck for the role the entrypoint started.
#   worker: the worker answers a ping, by its own node name, over the broker (so a worker that
#           cannot reach Redis is unhealthy);
#   flower: its /healthcheck answers;
#   beat:   nothing beyond the process being alive.
set -eu
role="$(cat "${TMPDIR:-/tmp}/kit-role" 2>/dev/null || echo worker)"
case "$role" in
    worker)
        exec celery -A project inspect ping \
            --destination "celery@${HOSTNAME:-$(hostname)}" --timeout "${KIT_PING_TIMEOUT:-5}"
        ;;
    flower)
        exec python -c 'import os, sys, urllib.request
port = os.environ.get("FLOWER_PORT", "5555")
with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=5) as r:
    sys.exit(0 if r.status == 200 else 1)'
        ;;
    *)
        exit 0
        ;;
esac
