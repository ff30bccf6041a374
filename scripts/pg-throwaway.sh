#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for the tests (CI and local runs).
#
#   eval "$(bash scripts/pg-throwaway.sh start [--durable])"
#       starts a server in a new temporary folder and prints, on stdout and nothing else,
#           export UPDHUB_TEST_PG_URL=postgres://updhub:PASSWORD@127.0.0.1:PORT/postgres
#           export UPDHUB_TEST_PG_DIR=/tmp/updhub-pg.XXXXXX
#       (progress goes to stderr). The tests' server runs with fsync and synchronous_commit
#       off: its data dies with it, and a test never kills it. With --durable it keeps
#       PostgreSQL's crash-safe defaults, for a trial cluster whose database may see a
#       kill -9 (off, a killed server loses commits already acknowledged to updhub:
#       6 of 59 station registrations in one try).
#   bash scripts/pg-throwaway.sh stop "$UPDHUB_TEST_PG_DIR"
#       stops that server (pg_ctl stop -m fast) and removes its folder.
#
# initdb and pg_ctl refuse to run as root: run as root, the script creates (once) a system
# user `updhub-pg` with no login shell and runs them as that user; run as anyone else, it
# runs them as itself. The server listens only on 127.0.0.1 (and a unix socket inside its
# own folder), on a free port, and every connection, local or TCP, needs the superuser
# `updhub`'s random password (scram-sha-256).
set -euo pipefail

PG_USER=updhub-pg       # the system user the server runs as when this script runs as root
MARKER=.updhub-pg-throwaway

say() { printf 'pg-throwaway: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
    cat >&2 <<'USAGE'
usage: eval "$(bash scripts/pg-throwaway.sh start [--durable])"
       bash scripts/pg-throwaway.sh stop "$UPDHUB_TEST_PG_DIR"
USAGE
    exit 2
}

# The folder holding initdb, pg_ctl and postgres of PostgreSQL 15.
find_bindir() {
    local d
    for d in /usr/lib/postgresql/15/bin "$(pg_config --bindir 2>/dev/null || true)"; do
        [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] || continue
        if "$d/postgres" --version 2>/dev/null | grep -Eq ' 15(\.|$)'; then
            printf '%s\n' "$d"
            return 0
        fi
    done
    die "PostgreSQL 15 not found (looked in /usr/lib/postgresql/15/bin and pg_config --bindir);" \
        "install it, e.g. apt-get install postgresql-15"
}

# Run a command as the server's user: as ourselves, or as $PG_USER when we are root.
# The working directory is the server's folder ($1), which that user can enter.
as_pg() {
    local dir=$1
    shift
    if [ "$(id -u)" -ne 0 ]; then
        (cd "$dir" && "$@")
    elif command -v runuser >/dev/null 2>&1; then
        (cd "$dir" && runuser -u "$PG_USER" -- "$@")
    else
        local q
        q=$(printf '%q ' "$@")
        (cd "$dir" && su -s /bin/sh "$PG_USER" -c "$q")
    fi
}

ensure_pg_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    if ! id -u "$PG_USER" >/dev/null 2>&1; then
        local nologin=/usr/sbin/nologin
        [ -x "$nologin" ] || nologin=/sbin/nologin
        [ -x "$nologin" ] || nologin=/bin/false
        say "creating system user $PG_USER (no login shell)"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell "$nologin" "$PG_USER" >&2 ||
            die "could not create the system user $PG_USER"
    fi
}

# A port on 127.0.0.1 that nothing listens on right now.
free_port() {
    local p
    if command -v python3 >/dev/null 2>&1 &&
        p=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null) && [ -n "$p" ]; then
        printf '%s\n' "$p"
        return 0
    fi
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    die "found no free port on 127.0.0.1"
}

start() {
    local durable=${1:-} bindir dir data log password port attempt speed
    bindir=$(find_bindir)
    ensure_pg_user

    dir=$(mktemp -d "${TMPDIR:-/tmp}/updhub-pg.XXXXXX") || die "mktemp -d failed"
    touch "$dir/$MARKER"
    data=$dir/data
    log=$dir/server.log
    # Until the server is up, any failure removes the folder (and a half-started server).
    trap 'as_pg "$dir" "$bindir/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

    password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    [ ${#password} -eq 32 ] || die "could not read a random password from /dev/urandom"
    (umask 077 && printf '%s\n' "$password" >"$dir/pwfile")
    if [ "$(id -u)" -eq 0 ]; then
        chown -R "$PG_USER:" "$dir"
    fi
    chmod 700 "$dir"
    as_pg "$dir" test -w "$dir" ||
        die "$PG_USER cannot write to $dir (is ${TMPDIR:-/tmp} reachable by other users?)"

    say "initdb in $data ($("$bindir/postgres" --version))"
    if ! as_pg "$dir" "$bindir/initdb" --pgdata="$data" --username=updhub \
        --pwfile="$dir/pwfile" --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
        tail -n 30 "$dir/initdb.log" >&2 || true
        die "initdb failed"
    fi
    rm -f "$dir/pwfile"

    if [ "$durable" = --durable ]; then
        speed="# --durable: PostgreSQL's crash-safe defaults (fsync, synchronous_commit on)."
    else
        speed="# A throwaway server for tests: its data dies with it, so trade crash safety for speed.
# Never use these settings for a database whose contents matter (start --durable).
fsync = off
synchronous_commit = off
full_page_writes = off"
    fi
    for attempt in 1 2 3; do
        port=$(free_port)
        # postgresql.auto.conf overrides postgresql.conf; rewritten on each attempt.
        cat >"$data/postgresql.auto.conf" <<CONF
# Written by scripts/pg-throwaway.sh.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 400
shared_buffers = 128MB
$speed
CONF
        say "starting on 127.0.0.1:$port (attempt $attempt)"
        if as_pg "$dir" "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start >&2; then
            trap - EXIT
            say "ready: 127.0.0.1:$port, folder $dir"
            printf 'export UPDHUB_TEST_PG_URL=%q\n' \
                "postgres://updhub:$password@127.0.0.1:$port/postgres"
            printf 'export UPDHUB_TEST_PG_DIR=%q\n' "$dir"
            return 0
        fi
        say "the server did not start; last lines of $log:"
        tail -n 30 "$log" >&2 || true
        # A port taken in the meantime is worth another try; anything else is not.
        grep -q 'could not bind' "$log" 2>/dev/null || break
    done
    die "PostgreSQL failed to start (see the log above)"
}

stop() {
    local dir=${1:-}
    [ -n "$dir" ] || usage
    [ -d "$dir" ] || die "no such folder: $dir"
    [ -f "$dir/$MARKER" ] || die "$dir is not a folder made by pg-throwaway.sh start; not touching it"
    local bindir data=$dir/data
    bindir=$(find_bindir)
    if [ -f "$data/postmaster.pid" ]; then
        local pid i
        pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
        say "stopping the server in $data"
        if ! as_pg "$dir" "$bindir/pg_ctl" -D "$data" stop -m fast -w -t 60 >&2; then
            say "fast stop failed; trying immediate"
            as_pg "$dir" "$bindir/pg_ctl" -D "$data" stop -m immediate -w -t 30 >&2 ||
                die "could not stop the server in $data; folder kept"
        fi
        # pg_ctl returns once the postmaster removed its pid file, a moment before the
        # process itself is gone: wait for that too, so nothing of it outlives this call.
        if [[ $pid =~ ^[0-9]+$ ]]; then
            for i in $(seq 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            ! kill -0 "$pid" 2>/dev/null || die "the postmaster (pid $pid) is still running; folder kept"
        fi
    fi
    rm -rf "$dir"
    say "stopped and removed $dir"
}

case "${1:-}" in
    start)
        case "$#:${2:-}" in
            1:) start ;;
            2:--durable) start --durable ;;
            *) usage ;;
        esac
        ;;
    stop) [ $# -eq 2 ] || usage; stop "$2" ;;
    *) usage ;;
esac
