#!/usr/bin/env bash
# Run segenc on a fresh machine: sets up .venv on first use (pip only, Redis included), then
#   ./run.sh [--port 5000 --tmp-dir /tmp/encoder ...]   start the service (web UI, API, Redis, a worker)
#   ./run.sh encode INPUT -o OUT_DIR                     encode one video from the command line
#   ./run.sh probe INPUT                                 show what segenc sees in a file
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh service  # explicit: a sourced script would see our arguments
case "${1:-}" in
  encode|probe) exec segenc "$@" ;;
  *) exec python start_service.py "$@" ;;
esac
