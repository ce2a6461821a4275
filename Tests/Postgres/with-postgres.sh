#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster: initdb on a temporary directory, a
# loopback port, started with pg_ctl and stopped (and removed) when the command ends, however
# it ends. The command sees QDWALLET_TEST_POSTGRES=postgres://qdwallet@127.0.0.1:PORT/qdwallet_test
# and the tests that touch a database run on PostgreSQL too.
#
#     Tests/Postgres/with-postgres.sh swift test
#
# PostgreSQL refuses to run as root: as root (CI), the cluster runs as the `postgres` user
# of Debian's package. Needs Debian's `postgresql` package (initdb and pg_ctl).
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGUMENTS...]" >&2
    exit 2
fi

bin=""
for candidate in /usr/lib/postgresql/*/bin; do
    if [ -x "$candidate/initdb" ]; then bin="$candidate"; fi
done
if [ -z "$bin" ]; then
    echo "with-postgres: no initdb found under /usr/lib/postgresql/*/bin: install Debian's postgresql package" >&2
    exit 2
fi

as_owner() {
    if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

directory="$(mktemp -d /tmp/qdwallet-pg.XXXXXX)"
if [ "$(id -u)" = "0" ]; then chown postgres: "$directory"; fi
chmod 700 "$directory"

stop() {
    as_owner "$bin/pg_ctl" -D "$directory/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$directory"
}
trap stop EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# A free loopback port, chosen by the kernel.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"

as_owner "$bin/initdb" -D "$directory/data" -U qdwallet -A trust -E UTF8 --locale=C.UTF-8 >"$directory/initdb.log" 2>&1 || {
    cat "$directory/initdb.log" >&2
    exit 1
}
# Loopback only, sockets in the cluster's own directory; enough connections for the tests that
# race many processes. fsync stays on: the tests measure nothing, but they must see what a
# server does. QDWALLET_PG_OPTIONS adds server settings, for profiling:
#     QDWALLET_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements" Tests/Postgres/with-postgres.sh ...
as_owner "$bin/pg_ctl" -D "$directory/data" -l "$directory/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $directory -c max_connections=200 -c shared_buffers=128MB ${QDWALLET_PG_OPTIONS:-}" start >/dev/null || {
    cat "$directory/server.log" >&2
    exit 1
}
as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U qdwallet qdwallet_test

export QDWALLET_TEST_POSTGRES="postgres://qdwallet@127.0.0.1:$port/qdwallet_test"
echo "with-postgres: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
status=0
"$@" || status=$?
exit "$status"
