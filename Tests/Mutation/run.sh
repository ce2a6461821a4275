#!/usr/bin/env bash
# The mutation probe: Tests/Mutation/run.sh [--only NAME[,NAME] | --count N --seed S]
set -euo pipefail
exec python3 "$(dirname "$0")/probe.py" "$@"
