#!/usr/bin/env bash
# Cluster drill: three gslb members, a single-node etcd and three backends on
# loopback; for SECONDS (default 60) it kills and restarts members (SIGKILL),
# etcd and backends at random under a bounded query load (100 q/s over the
# members), then reports lost queries, answers naming an endpoint whose
# backend had been dead for longer than the convergence bound, and how long
# members disagreed. Exit 1 on any lost query or stale answer. Stops
# everything it started. The logic is scripts/cluster_chaos.py.
#
# Usage: scripts/cluster-chaos.sh [SECONDS] [--seed N] [--rate QPS]
#        (needs etcd: apt-get install etcd-server; python3)
#        GSLB=path/to/gslb uses that binary instead of building a release one.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 1; }
SECONDS_ARG=60
if [[ ${1:-} =~ ^[0-9]+$ ]]; then SECONDS_ARG=$1; shift; fi
if [ -z "${GSLB:-}" ]; then
    cargo build --release --quiet
    GSLB=$PWD/target/release/gslb
fi
# Bounded: the drill itself stops after SECONDS plus settling; the timeout
# is a backstop.
exec timeout --signal=TERM $((SECONDS_ARG + 120)) \
    python3 scripts/cluster_chaos.py "$GSLB" --duration "$SECONDS_ARG" "$@"
