#!/usr/bin/env bash
# A load run of the HTTP API with wrk: QR payments confirmed by the device's signature, then
# balance reads, against `qdwallet serve` (release build) on a new database: a SQLite file,
# or with --db an empty PostgreSQL database.
#
#   Tests/API/load.sh [--db postgres://...] [--payments N] [--rate R] [--connections C] [--wallets N] [--merchants N] [--readers C] [--seconds S] [--bin DIR]
#
# --bin takes qdwallet and qdwallet-bench from DIR instead of .build/release (to alternate
# two builds in one sitting); --readers 0 leaves the balance reads out.
#
# Each payment is prepared beforehand (qdwallet-bench api-load: a challenge each, signed by
# its wallet's device key; challenges last two minutes) and sent once, for S seconds (20);
# prepare more than the run can send, or the rate wrk prints is a lower bound (it says so).
# With --rate, each of wrk's two threads sends on a fixed schedule of R/2 a second (the
# next free slot for each request, whatever the latency: the rate is R while the server
# keeps up, and what it managed when it does not); without, as fast as it goes. Results in
# BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

db="" bin=.build/release payments=20000 rate=0 connections=16 wallets=400 merchants=100 readers=4 seconds=20
while [ $# -gt 0 ]; do
    case "$1" in
        --db) db="$2"; shift 2 ;;
        --payments) payments="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --wallets) wallets="$2"; shift 2 ;;
        --merchants) merchants="$2"; shift 2 ;;
        --readers) readers="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        *) echo "load.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "load.sh: needs wrk (apt-get install wrk)" >&2; exit 2; }

. Tests/API/serve.sh
database="${db:-$directory/load.sqlite}"
"$bin/qdwallet-bench" api-load --db "$database" --out "$directory" --wallets "$wallets" --payments "$payments" --merchants "$merchants"
start_serve "$bin/qdwallet" "$database"

period=0
if [ "$rate" != "0" ]; then period=$(python3 -c "print(2 * 1000 / $rate)"); fi
echo "== QR payments confirmed by device signature: $payments prepared, $connections connections, $([ "$rate" = 0 ] && echo unpaced || echo "at most $rate/s") ($([ -n "$db" ] && echo PostgreSQL || echo SQLite))"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s Tests/API/payments.lua "$base" -- 2 "$directory/payments.tsv" "$period"

if [ "$readers" -gt 0 ]; then
    token="$(cat "$directory/token")"
    reading=$(( seconds < 10 ? seconds : 10 ))
    echo "== balance reads (GET /v1/wallet), $readers connections, $reading s"
    wrk -t2 -c"$readers" -d"${reading}s" --latency -H "Authorization: Bearer $token" "$base/v1/wallet"
fi
