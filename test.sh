#!/usr/bin/env bash
# Run the test suite on a fresh machine: sets up .venv, the browser, then runs pytest.
# Extra arguments go to pytest (e.g. ./test.sh -m "not browser" -x).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh test
# Debian packages some tests need, installed when missing (as root): what, binary, package.
need() {
  [ -x "$2" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "segenc: installing $3 for the $1 tests" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$3") >&2 \
      || echo "segenc: could not install $3; $1 tests will be skipped" >&2
  else
    echo "segenc: $2 missing and not root; $1 tests will be skipped" >&2
  fi
}
need browser /usr/bin/chromium chromium
need RabbitMQ /usr/lib/rabbitmq/bin/rabbitmq-server rabbitmq-server
exec python -m pytest "$@"
