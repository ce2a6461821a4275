#!/usr/bin/env bash
# schemathesis against `qdwallet serve` on a new database: every operation of the served
# /openapi.json, with a bounded number of generated examples (SCHEMATHESIS_EXAMPLES, 50),
# every check: no 5xx, every status, content type, header and body as the document says.
# Run after `swift build`; schemathesis comes from PyPI into a virtual environment of its own.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${QDWALLET_SCHEMATHESIS_VENV:-${TMPDIR:-/tmp}/qdwallet-schemathesis}"
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi

directory="$(mktemp -d)"
server=""
stop() {
    if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$directory"
}
trap stop EXIT

.build/debug/qdwallet init --db "$directory/qdwallet.sqlite" >/dev/null
.build/debug/qdwallet serve --db "$directory/qdwallet.sqlite" --listen 127.0.0.1:0 >"$directory/out" 2>"$directory/err" &
server=$!
base=""
for _ in $(seq 1 300); do
    base="$(sed -n 's/^listening on //p' "$directory/out")"
    if [ -n "$base" ]; then break; fi
    if ! kill -0 "$server" 2>/dev/null; then cat "$directory/err" >&2; exit 1; fi
    sleep 0.1
done
if [ -z "$base" ]; then echo "schemathesis.sh: qdwallet serve did not start" >&2; exit 1; fi

# In the temporary folder: schemathesis keeps a cache of its findings in the current one.
(cd "$directory" && "$venv/bin/schemathesis" --no-color run "$base/openapi.json" --checks all --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" \
    --max-failures 20 --wait-for-schema 10)

# The server stops cleanly on SIGTERM.
kill -TERM "$server"
wait "$server"
server=""
