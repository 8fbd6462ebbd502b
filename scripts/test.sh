#!/usr/bin/env bash
# The test command (`make test`, which .ci/run calls): system packages, a throwaway
# PostgreSQL, the virtualenv, ruff, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Redis and PostgreSQL from Debian, when we may install them (CI runs as root).
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    missing=()
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi

pg_dir=""
cleanup() {
    if [ -n "$pg_dir" ]; then
        run_pg pg_ctl -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
}
trap cleanup EXIT

run_pg() {  # PostgreSQL refuses to run as root
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$bin/$1" "${@:2}"
    else
        "$bin/$1" "${@:2}"
    fi
}

if [ -z "${SWATCH_TEST_POSTGRES_URL:-}" ] && compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    pg_dir=$(mktemp -d /tmp/swatch-pg.XXXXXX)
    [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    run_pg initdb -D "$pg_dir/data" -A trust -U swatch >/dev/null
    run_pg pg_ctl -D "$pg_dir/data" -l "$pg_dir/log" -w \
        -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    export SWATCH_TEST_POSTGRES_URL="postgresql+psycopg://swatch@127.0.0.1:$port/postgres"
    echo "PostgreSQL for the tests on port $port"
fi

make install
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest "$@"
