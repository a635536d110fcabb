#!/bin/sh
# `worker`, `beat` or `flower` (plus options) run `celery -A project <role> ...`; anything else
# runs as given (e.g. `celery -A project inspect ping`, `kit up`, `sh`).
set -eu
if [ "$#" -eq 0 ]; then
    set -- worker --loglevel=INFO
fi
case "$1" in
    worker | beat | flower)
        # The healthcheck reads the role: it cannot see this process's environment.
        echo "$1" > "${TMPDIR:-/tmp}/kit-role" 2>/dev/null || true
        exec celery -A project "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
