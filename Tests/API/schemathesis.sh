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

. Tests/API/serve.sh
.build/debug/qdwallet init --db "$directory/qdwallet.sqlite" >/dev/null
start_serve .build/debug/qdwallet "$directory/qdwallet.sqlite"

# A signed-in device, so that the operations behind a token are fuzzed too: a code asked for,
# read from the notify sink the server delivers it to at once (Jobs/notify.toml: a file
# beside the database), and a P-256 key made by openssl.
phone=13912345678
curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"phone\":\"$phone\"}" "$base/v1/sms-codes" >/dev/null
code="$(python3 - "$directory/reports/notifications.jsonl" <<'PY'
import json, sys, time
for _ in range(100):
    try:
        for line in open(sys.argv[1]):
            message = json.loads(line)
            if message["kind"] == "sms_code":
                print(message["payload"]["code"])
                sys.exit(0)
    except FileNotFoundError:
        pass
    time.sleep(0.1)
sys.exit("no one-time code reached the notify sink")
PY
)"
key="$(openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl ec -pubout -outform DER 2>/dev/null | tail -c 65 | base64 -w0)"
token="$(curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"phone\":\"$phone\",\"code\":\"$code\",\"public_key\":\"$key\",\"label\":\"schemathesis\",\"name\":\"Test\",\"payment_password\":\"135790\"}" \
    "$base/v1/devices" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

config="$PWD/Tests/API/schemathesis.toml"
# In the temporary folder: schemathesis keeps a cache of its findings in the current one.
# Removing a device last: a generated DELETE /v1/devices/1 would sign the device out, and
# every operation after it would be fuzzed without a working token.
run() {
    (cd "$directory" && "$venv/bin/schemathesis" --no-color --config-file "$config" run "$base/openapi.json" --checks all --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" \
        --max-failures 20 --wait-for-schema 10 -H "Authorization: Bearer $token" "$@")
}
run --exclude-operation-id removeDevice
run --include-operation-id removeDevice

# The server stops cleanly on SIGTERM.
kill -TERM "$server"
wait "$server"
server=""
