# Sourced by the scripts of Tests/API: a temporary folder, a data key of the run's own (the
# app's tokens and codes are keyed from it), and `start_serve BINARY DATABASE`, which starts
# `qdwallet serve` on a loopback port the system chooses, with the rate limits out of the way
# and its notify sink and reports in the temporary folder, and sets $server and $base. The server is stopped and the folder removed on exit.
directory="$(mktemp -d)"
server=""
stop() {
    if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$directory"
}
trap stop EXIT
QDWALLET_DATA_KEY="$(head -c 32 /dev/urandom | base64)"
export QDWALLET_DATA_KEY

start_serve() {
    "$1" serve --db "$2" --reports-dir "$directory/reports" --listen 127.0.0.1:0 --rate-per-address 10000 --rate-burst 100000 --rate-per-device 10000 --rate-per-wallet 10000 >"$directory/out" 2>"$directory/err" &
    server=$!
    base=""
    for _ in $(seq 1 300); do
        base="$(sed -n 's/^listening on //p' "$directory/out")"
        if [ -n "$base" ]; then return 0; fi
        if ! kill -0 "$server" 2>/dev/null; then cat "$directory/err" >&2; exit 1; fi
        sleep 0.1
    done
    echo "qdwallet serve did not start" >&2
    exit 1
}
