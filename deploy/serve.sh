#!/bin/sh
# Serve the API with uvicorn: $NEXTWORD_WORKERS worker processes (default 1) on
# $NEXTWORD_HOST:$NEXTWORD_PORT (default 0.0.0.0:8000). The image's CMD; runs the same on a host
# whose `python` has nextword's dependencies (e.g. PATH=.venv/bin:$PATH deploy/serve.sh).
#
# With more than one worker, prometheus-client's multiprocess mode must be on before any worker
# starts, so that /metrics, whichever worker answers it, adds up every worker's samples. Its
# directory must hold no files from an earlier run, so this script empties it first.
set -eu

workers="${NEXTWORD_WORKERS:-1}"
if [ "$workers" -gt 1 ]; then
  export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/nextword-metrics}"
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db
fi

if [ "$workers" -eq 1 ]; then
  exec python -m app  # one worker: a graceful SIGTERM shutdown exits 0 (see app/__main__.py)
fi
exec python -m uvicorn app.main:create_app --factory \
  --host "${NEXTWORD_HOST:-0.0.0.0}" --port "${NEXTWORD_PORT:-8000}" --workers "$workers"
