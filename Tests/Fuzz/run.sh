#!/usr/bin/env bash
# Fuzzes one of qdwallet's input parsers with libFuzzer for a bounded time.
#
#   Tests/Fuzz/run.sh amount|qr|feed [SECONDS] [-- LIBFUZZER-FLAGS...]
#
# Builds the qdwallet-fuzz target with -sanitize=fuzzer (every Swift module instrumented for
# coverage) into .build-fuzz, then runs it from the seed corpus (Tests/Fuzz/corpus/TARGET, and
# for feeds the sample and broken feeds of SampleFeeds). New inputs go to
# .build-fuzz/corpus/TARGET; a crash leaves its input as .build-fuzz/findings/TARGET/crash-*,
# which `qdwallet-fuzz TARGET FILE` (a normal build) replays. Exits non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/../.."

target="${1:-}"
seconds="${2:-60}"
case "$target" in
    amount|qr|feed) ;;
    *) echo "usage: Tests/Fuzz/run.sh amount|qr|feed [SECONDS] [-- LIBFUZZER-FLAGS...]" >&2; exit 2 ;;
esac
shift $(( $# >= 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift

mkdir -p .build-fuzz
if ! swift build --build-path .build-fuzz --product qdwallet-fuzz \
        -Xswiftc -sanitize=fuzzer -Xswiftc -DQDWALLET_LIBFUZZER > .build-fuzz/build.log 2>&1; then
    grep -E "error|warning: " .build-fuzz/build.log >&2 || tail -20 .build-fuzz/build.log >&2
    echo "the fuzz build failed (.build-fuzz/build.log)" >&2
    exit 1
fi
binary=".build-fuzz/debug/qdwallet-fuzz"

work=".build-fuzz/corpus/$target"
findings=".build-fuzz/findings/$target"
mkdir -p "$work" "$findings"
seeds=("Tests/Fuzz/corpus/$target")
if [ "$target" = feed ]; then
    seeds+=(SampleFeeds/QD-WATER SampleFeeds/bad)
fi

export QDWALLET_FUZZ_TARGET="$target"
export QDWALLET_SCHEMA_DIR="${QDWALLET_SCHEMA_DIR:-$PWD/SampleFeeds/schema}"
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$findings/" -print_final_stats=1 "$@" "$work" "${seeds[@]}"
