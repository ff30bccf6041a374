#!/usr/bin/env bash
# The README's test command: `bash scripts/test.sh [ARGS for cargo test]`.
#
# Sets up what the tests need, runs `cargo test --locked ARGS`, and takes it down again:
#   1. PostgreSQL 15: Debian's postgresql-15 is installed when initdb 15 is missing (as root,
#      or through sudo); the tests of every `tests/*_pg.rs` twin and the cluster tests run
#      their nodes on it.
#   2. A throwaway server (scripts/pg-throwaway.sh: a temporary folder, 127.0.0.1 only, a
#      free port, a random password), whose URL the tests get as UPDHUB_TEST_PG_URL. When
#      UPDHUB_TEST_PG_URL is already set (a server of your own), it is used as it is.
#   3. cargo test --locked "$@"; the server is stopped and its folder removed at exit,
#      whatever the outcome.
# A PostgreSQL test never runs on SQLite instead: without a server it fails, naming this
# script.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf 'test.sh: %s\n' "$*" >&2; }

pg15() {
    [ -x /usr/lib/postgresql/15/bin/initdb ] && [ -x /usr/lib/postgresql/15/bin/pg_ctl ]
}

if [ -z "${UPDHUB_TEST_PG_URL:-}" ]; then
    if ! pg15; then
        say "PostgreSQL 15 is not installed; installing Debian's postgresql-15"
        sudo=()
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null 2>&1 ||
                { say "error: not root and no sudo: install postgresql-15 yourself, or set UPDHUB_TEST_PG_URL to a PostgreSQL 15 server's URL"; exit 1; }
            sudo=(sudo)
        fi
        export DEBIAN_FRONTEND=noninteractive
        "${sudo[@]}" apt-get update -q >&2
        # The package's own cluster is not used; a failed service start in a container
        # without an init system is harmless here, as the next check says.
        "${sudo[@]}" apt-get install -y -q --no-install-recommends postgresql-15 >&2 || true
        pg15 || { say "error: postgresql-15 did not install (see apt-get's output above)"; exit 1; }
    fi
    # Not `eval "$(...)"` directly: eval would hide a failed start from set -e.
    pg_env=$(bash scripts/pg-throwaway.sh start)
    eval "$pg_env"
    export UPDHUB_TEST_PG_URL
    stop_pg() { bash scripts/pg-throwaway.sh stop "$UPDHUB_TEST_PG_DIR" || true; }
    trap stop_pg EXIT
    # A signal (Ctrl-C, CI's timeout) still stops the server: exit runs the EXIT trap.
    trap 'exit 130' INT
    trap 'exit 143' TERM
else
    say "using the PostgreSQL server in UPDHUB_TEST_PG_URL"
fi

cargo test --locked --no-fail-fast "$@"
