#!/usr/bin/env bash
# Run the test suite on a fresh machine: sets up .venv, the browser, then runs pytest.
# Extra arguments go to pytest (e.g. ./test.sh -m "not browser" -x).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh test
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "segenc: installing chromium for the browser tests" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2 \
      || echo "segenc: could not install chromium; browser tests will be skipped" >&2
  else
    echo "segenc: /usr/bin/chromium missing and not root; browser tests will be skipped" >&2
  fi
fi
exec python -m pytest "$@"
