#!/usr/bin/env bash
# DNSSEC build cost (issue 20): snapshot build time and peak memory of
# `gslb check` (which builds the whole snapshot, signing included) for a zone
# with SERVICES services × 3 pools × 2 endpoints, signed and unsigned.
# Every one-endpoint answer is signed at build (each endpoint × the answer
# TTL and the failover TTL), plus one NSEC per name. See benches/README.md,
# "DNSSEC".
#
#   benches/dnssec_build.sh            # uses target/release/gslb (built if missing)
#
# Knobs (environment, defaults in brackets):
#   OUT [target/bench-dnssec]   generated inputs (never committed)
#   SERVICES [10000]  POOLS [1000]  ALGORITHM [13]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/target/bench-dnssec}
SERVICES=${SERVICES:-10000}
POOLS=${POOLS:-1000}
ALGORITHM=${ALGORITHM:-13}
GSLB=$ROOT/target/release/gslb
[[ -x $GSLB ]] || (cd "$ROOT" && cargo build --release --quiet)
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT/keys"
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
zone = '[[zone]]\norigin = "scale.test"\nfile = "scale.zone"\n'
for name, extra in (("unsigned", ""), ("signed", f'dnssec = true\ndnssec_keys = ["{key}"]\n')):
    with open(f"{out}/{name}.toml", "w") as f:
        f.write(zone + extra + "\n" + "\n".join(body))
PY

for run in unsigned signed unsigned signed; do
  /usr/bin/time -f "$run: %e s wall, %U s user, %M KiB max RSS" \
    "$GSLB" check -c "$OUT/$run.toml" >/dev/null 2>"$OUT/$run.err" || { cat "$OUT/$run.err" >&2; exit 1; }
  tail -1 "$OUT/$run.err"
done
