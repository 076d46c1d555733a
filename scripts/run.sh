#!/usr/bin/env bash
# Serve the API and consoles with simulated units driving; Ctrl-C stops both.
set -u
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
WORKERS=${WORKERS:-2}
BIN=${BIN:-.venv/bin}
if (echo > "/dev/tcp/$HOST/$PORT") 2>/dev/null; then
  echo "Port $PORT on $HOST is already in use: stop what runs there, or run 'make run PORT=8001'" >&2
  exit 1
fi
"$BIN/cad" simulate --url "http://$HOST:$PORT" --calls-per-min "${SIM_CALLS_PER_MIN:-4}" --speedup 4 &
SIM=$!
trap 'kill $SIM 2>/dev/null; wait $SIM 2>/dev/null' EXIT
echo "Consoles: http://$HOST:$PORT/console/   API docs: http://$HOST:$PORT/docs"
"$BIN/cad" serve --host "$HOST" --port "$PORT" --workers "$WORKERS"
