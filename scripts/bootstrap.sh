#!/usr/bin/env bash
# Set up a virtual environment with everything segenc needs; safe to run again (fast when done).
# Usage: source scripts/bootstrap.sh EXTRAS   -> activates .venv; EXTRAS is "" (the library and its CLI),
#        "service" (./run.sh: the web service, Celery, Redis) or "test" (everything + test tools). Always
#        pass it: a sourced script otherwise sees the caller's arguments as its own.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SEGENC_VENV:-$here/.venv}"
extras="${1:-}"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "segenc: creating virtual environment in $venv" >&2
  "$py" -m venv "$venv"
fi
stamp="$venv/.segenc-installed-$extras"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
  echo "segenc: installing dependencies into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  if [ -n "$extras" ]; then spec="$here[$extras]"; else spec="$here"; fi
  "$venv/bin/python" -m pip install --quiet -e "$spec" >&2
  touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV="$venv"
