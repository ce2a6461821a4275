#!/usr/bin/env bash
# The test suite on both engines: every test on SQLite (and the SQL layer's and the engine's
# own tests on PostgreSQL), then the tests of the modules whose stores run on PostgreSQL
# again with QDWALLET_TEST_ENGINE=postgres. Run it inside Tests/Postgres/with-postgres.sh
# (the README's test command does), after `swift build --build-tests`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The HTTP server's tests run in a pass of their own: the server's handlers run on Swift's
# cooperative threads (as many as cores), which the synchronous tests of the first pass hold
# for a minute at a time when they run beside it.
swift test --skip-build --skip ServerTests "$@"
swift test --skip-build --filter ServerTests "$@"
if [ -n "${QDWALLET_TEST_POSTGRES:-}" ]; then
    # Every module's tests that touch a database, and the CLI's end-to-end suites that speak
    # to it only through the CLI (the concurrency and crash tests run on both engines in the
    # first pass already).
    # The wallet app's flows over HTTP, in a pass of their own like the server's first one.
    QDWALLET_TEST_ENGINE=postgres swift test --skip-build --filter WalletAPITests "$@"
    QDWALLET_TEST_ENGINE=postgres swift test --skip-build --filter "LedgerTests|WalletTests|JobRunnerTests|BillingTests|FeedsTests|NotifyTests|ReportsTests|WalletCLITests|BillingCLITests|JobsCLITests|AmountBoundsCLITests|AuditTrailTests|FeedRetentionTests|RunParameterTests" "$@"
else
    echo "test.sh: QDWALLET_TEST_POSTGRES is not set: PostgreSQL skipped (run inside Tests/Postgres/with-postgres.sh)" >&2
fi
