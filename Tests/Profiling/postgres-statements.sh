#!/usr/bin/env bash
# Where a command's PostgreSQL server time goes, statement by statement: the database's
# statistics of statements (the server's pg_stat_statements) emptied, the command run, then
# one line a statement, the costliest first: seconds of execution, calls, rows, WAL written
# (MB) and the statement's text (its values replaced by $1, $2, ...). Not part of the build.
#
#   QDWALLET_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" \
#       Tests/Postgres/with-postgres.sh bash -c 'echo $QDWALLET_TEST_POSTGRES > /tmp/pgurl; sleep 100000' &
#   Tests/Profiling/postgres-statements.sh postgres://qdwallet@127.0.0.1:PORT/city \
#       qdwallet jobs run nightly-billing --date 2026-11-27 --db postgres://qdwallet@127.0.0.1:PORT/city --jobs-dir CITY/Jobs
#
# The server must load the module at start (`shared_preload_libraries`); the extension is
# created in the database if it is not there. With `pg_stat_statements.track=all` the
# statements run inside others are listed too (a foreign key's check of each row written is
# `SELECT ... FOR KEY SHARE`): their time is also in the statement that ran them. The
# statistics are the whole server's: what other sessions run meanwhile in the same database
# is counted too. QDWALLET_PROFILE_TOP lines (30 unless set) and a line of totals, on stderr
# so that the command's own output stays as it is.
set -uo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 POSTGRES-URL COMMAND [ARGUMENTS...]" >&2
    exit 2
fi
url="$1"
shift
top="${QDWALLET_PROFILE_TOP:-30}"
case "$top" in
    ''|*[!0-9]*) echo "postgres-statements: QDWALLET_PROFILE_TOP must be a number of lines, not '$top'" >&2; exit 2 ;;
esac

if ! psql -qAtX "$url" -c "SHOW shared_preload_libraries" | grep -q pg_stat_statements; then
    echo "postgres-statements: the server does not load pg_stat_statements; start it with -c shared_preload_libraries=pg_stat_statements" >&2
    exit 2
fi
psql -qAtX "$url" -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" -c "SELECT pg_stat_statements_reset()" >/dev/null || exit 2

"$@"
status=$?

{
    echo "seconds	calls	rows	WAL MB	statement"
    psql -qAtX -F '	' "$url" -c "
        SELECT round(total_exec_time::numeric / 1000, 2), calls, rows, round(wal_bytes / 1e6, 0),
               left(regexp_replace(query, '\s+', ' ', 'g'), 160)
        FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY total_exec_time DESC LIMIT $top" \
        -c "
        SELECT round(sum(total_exec_time)::numeric / 1000, 2), sum(calls), sum(rows), round(sum(wal_bytes) / 1e6, 0), 'all statements run at the top level'
        FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel"
} >&2
exit $status
