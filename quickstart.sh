#!/usr/bin/env bash
# datamin's quick start, on a machine with Python 3.11+, Java 17+ and Maven:
#   bash quickstart.sh demo    install, start Kafka, run the pipeline on synthetic traffic, show DuckDB rows
#   bash quickstart.sh test    install, start a test broker, run the whole test suite (pytest args may follow)
# Everything lands in this folder: .venv/ (Python packages), .datamin/ (Kafka jars, broker data, logs),
# data/ (the demo's warehouse). Set KAFKA_BOOTSTRAP_SERVERS to use a broker of your own instead.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${DATAMIN_VENV:-.venv}
PYTHON=${PYTHON:-python3}

need() { command -v "$1" >/dev/null 2>&1 || { echo "quickstart: $1 is not installed; $2" >&2; exit 2; }; }

install() {
  need "$PYTHON" "install Python 3.11 or newer"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "quickstart: $("$PYTHON" --version) is too old; datamin needs Python 3.11+ (set PYTHON=...)" >&2; exit 2; }
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating the virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  # reinstall only when the project's dependencies changed
  stamp="$VENV/.datamin-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing datamin and its test dependencies into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[test]"
    touch "$stamp"
  fi
}

ensure_chromium() {
  # the collector's browser test runs headless Chromium; CI installs it when missing (Debian/Ubuntu)
  if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then return; fi
  if [ "${CI:-}" = "true" ] && command -v apt-get >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing chromium for the collector's browser test"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
}

start_test_broker() {
  # the test broker lives apart from the demo's, on its own port, with fresh data every run
  export DATAMIN_HOME=${DATAMIN_TEST_HOME:-.datamin/test}
  # below 32768: outside Linux's ephemeral range, where a busy machine's own client sockets can hold a port
  local port=${DATAMIN_TEST_KAFKA_PORT:-29092}
  "$VENV/bin/datamin" kafka stop --port "$port" >/dev/null 2>&1 || true
  rm -rf "$DATAMIN_HOME/kafka/data"
  need java "install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)"
  need mvn "install Maven (e.g. apt-get install maven); it fetches Kafka from Maven Central"
  "$VENV/bin/datamin" kafka start --port "$port"
  trap '"$VENV/bin/datamin" kafka stop --port '"$port"' || true' EXIT
  export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$port"
}

case "${1:-}" in
  demo)
    shift
    install
    need java "install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)"
    need mvn "install Maven (e.g. apt-get install maven); it fetches Kafka from Maven Central"
    exec "$VENV/bin/datamin" demo "$@"
    ;;
  test)
    shift
    install
    ensure_chromium
    if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then start_test_broker; fi
    "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
