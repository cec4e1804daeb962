#!/usr/bin/env bash
# The chaos run in its long mode: 10 000 deliveries against release builds of
# chargebridge, two processes, one Redis (AOF), a PMS simulator with faults,
# one kill -9 of a process and one Redis crash. Prints the accounts table and
# exits non-zero on any violation.
#
#   tests/chaos/run.sh                      # long mode
#   tests/chaos/run.sh --deliveries 50000   # longer
#   tests/chaos/run.sh --sabotage memory-store   # prove the checks catch doubles
#   tests/chaos/run.sh --redis cluster      # Redis Cluster (3 masters + 3 replicas),
#                                           # a master killed so its replica takes over
#   tests/chaos/run.sh --redis cluster --cluster-fault failover   # CLUSTER FAILOVER instead
#   tests/chaos/run.sh --lose-writes restart    # Redis without AOF/RDB restarted empty mid-run
#   tests/chaos/run.sh --lose-writes flushall   # FLUSHALL of one Redis Cluster master mid-run
#   tests/chaos/run.sh --lose-writes restart --reconcile-new-keys off   # shows the doubles
#
# The short mode runs with the test suite: `cargo test --test chaos`.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v redis-server >/dev/null; then
    echo "chaos: redis-server is not installed (apt-get install redis-server)" >&2
    exit 2
fi
exec cargo test --release --test chaos -- --long "$@"
