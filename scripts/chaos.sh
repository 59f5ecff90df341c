#!/usr/bin/env bash
# Chaos drill: runs tests/chaos.rs for longer than the test suite does.
#
#   scripts/chaos.sh [SECONDS]      # load phase length, default 60 (8..600)
#
# gslb serves www.example.test from 3 regions x 2 endpoints, each a loopback
# HTTP server on 127.0.0.11/12, .21/22, .31/32 probed every 200 ms (fall 2,
# rise 2), while a client sends 500 queries/s with ECS from the three
# regions' networks. Meanwhile backends are killed and restarted, the
# configuration is reloaded with SIGHUP (good and bad alternating) and the
# GeoIP database is rebuilt with `gslb geoip build` and renamed over the
# served one. At the end it prints queries sent/lost, SERVFAILs, stale
# answers, kills, reloads, database swaps and RSS before/after, and fails
# if any query was lost, any SERVFAIL or stale answer was seen, the process
# died or RSS grew beyond the bound.
#
# Loopback addresses only; the whole run is bounded by `timeout`.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds < 8 || seconds > 600)); then
  echo "usage: $0 [SECONDS]   (8..600, default 60)" >&2
  exit 2
fi

cd "$(dirname "$0")/.."
# Build first (not counted in the bound), then run with a hard limit.
cargo test --release --test chaos --no-run
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
GSLB_CHAOS_SECS="$seconds" timeout --kill-after=10 "$((seconds + 60))" \
  cargo test --release --test chaos -- --nocapture --test-threads=1 >"$log" 2>&1 || status=$?
grep -oE 'chaos drill over.*' "$log" || true
if ((status != 0)); then
  echo "chaos drill FAILED (exit $status):" >&2
  tail -n 60 "$log" >&2
fi
exit "$status"
