#!/usr/bin/env bash
# DNSSEC build cost (issue 20): snapshot build time and memory for a zone
# with SERVICES services × 3 pools × 2 endpoints, signed and unsigned.
# Every one-endpoint answer is signed at build (each endpoint × the answer
# TTL and the failover TTL), plus one NSEC per name. See benches/README.md,
# "DNSSEC".
#
#   benches/dnssec_build.sh            # uses target/release/gslb (built if missing)
#
# Per configuration, ROUNDS times alternately: `gslb check` (which builds the
# whole snapshot, signing included): wall and user CPU seconds, peak RSS;
# then `gslb serve` on loopback until it listens: its RSS then (the
# snapshot held, what a running server keeps). On a shared machine wall
# time follows the load; user CPU (the best round) is the figure to compare.
#
# Knobs (environment, defaults in brackets):
#   OUT [target/bench-dnssec]   generated inputs (never committed)
#   SERVICES [10000]  POOLS [30000] (3 per service: none shared)  ALGORITHM [13]  ROUNDS [3]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/target/bench-dnssec}
SERVICES=${SERVICES:-10000}
POOLS=${POOLS:-30000}
ALGORITHM=${ALGORITHM:-13}
ROUNDS=${ROUNDS:-3}
GSLB=$ROOT/target/release/gslb
[[ -x $GSLB ]] || (cd "$ROOT" && cargo build --release --quiet)
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT/keys"
OUT=$(cd "$OUT" && pwd)  # key paths in the configs are absolute
KEY=$("$GSLB" dnssec keygen scale.test --algorithm "$ALGORITHM" --dir "$OUT/keys")

python3 - "$OUT" "$SERVICES" "$POOLS" "$KEY" <<'PY'
import sys
out, services, pools, key = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(f"{out}/scale.zone", "w") as z:
    z.write("$TTL 300\n@ SOA ns1 hostmaster 1 7200 900 1209600 60\n@ NS ns1\nns1 A 192.0.2.53\n")
body = []
for p in range(pools):
    a, b = divmod(p, 250)
    body.append(f'[pools.p{p}]\nendpoints = [{{ address = "10.{a}.{b}.1" }}, {{ address = "10.{a}.{b}.2" }}]\n')
for s in range(services):
    names = ", ".join(f'"p{(s * 3 + i) % pools}"' for i in range(3))
    body.append(f'[services."s{s}.scale.test"]\npolicy = "failover"\npools = [{names}]\nttl = 30\nfailover_ttl = 10\n')
server = '[server]\nlisten = ["127.0.0.1:0"]\napi = "127.0.0.1:0"\napi_require_token = false\n\n'
zone = '[[zone]]\norigin = "scale.test"\nfile = "scale.zone"\n'
for name, extra in (("unsigned", ""), ("signed", f'dnssec = true\ndnssec_keys = ["{key}"]\n')):
    with open(f"{out}/{name}.toml", "w") as f:
        f.write(server + zone + extra + "\n" + "\n".join(body))
PY

# RSS of a serving gslb once it listens (KiB).
serve_rss() {  # CONFIG
  local log=$OUT/serve.out pid rss=
  "$GSLB" serve -c "$1" >"$log" 2>"$OUT/serve.err" &
  pid=$!
  for ((i = 0; i < 1800; i++)); do   # at most 180 s
    grep -q '^listening on' "$log" 2>/dev/null && { sleep 1; rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status"); break; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  echo "${rss:-?}"
}

echo "zone scale.test: $SERVICES services x 3 pools x 2 endpoints ($POOLS pools), algorithm $ALGORITHM; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 1; round <= ROUNDS; round++)); do
  for run in unsigned signed; do
    /usr/bin/time -f "%e %U %M" -o "$OUT/$run.time" \
      "$GSLB" check -v -c "$OUT/$run.toml" >/dev/null 2>"$OUT/$run.err" || { cat "$OUT/$run.err" >&2; exit 1; }
    read -r wall user peak <"$OUT/$run.time"
    # The "zone signed" log line counts what signing at build made.
    made=$(sed -n 's/.*zone signed.*\(signatures=[0-9]*\) \(signature_bytes=[0-9]*\).*/; \1 \2/p' "$OUT/$run.err")
    echo "round $round $run: check ${wall} s wall, ${user} s user, peak RSS ${peak} KiB; serving RSS $(serve_rss "$OUT/$run.toml") KiB$made"
  done
done
