#!/usr/bin/env bash
# Run segenc on a fresh machine: sets up .venv on first use, then runs the segenc CLI.
#   ./run.sh encode INPUT -o OUT_DIR      encode a video to the H.264 ladder
#   ./run.sh probe INPUT                  show what segenc sees in a file
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
exec segenc "$@"
