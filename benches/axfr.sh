#!/usr/bin/env bash
# AXFR of a 100,000-record zone: time and memory, gslb as primary (dig and
# Knot pull it) and gslb as secondary (pulling it from another gslb).
#
#   benches/axfr.sh [RECORDS] [ROUNDS]      (defaults: 100000, 5)
#
# Needs a release build (cargo build --release), dig and, for the Knot
# round, knotd. Everything runs on loopback in a temporary directory and is
# stopped at the end. Prints one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."

records=${1:-100000}
rounds=${2:-5}
gslb=target/release/gslb
[ -x "$gslb" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d /tmp/gslb-axfr.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

secret=$(head -c 32 /dev/urandom | base64)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# CPU time (user + system) a process has used, in ms: on a shared machine
# this says more than wall time, which waits for other processes' turns.
tick=$(getconf CLK_TCK)
cpu_ms() { awk -v tick="$tick" '{print int(($14 + $15) * 1000 / tick)}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 1 600); do dig @127.0.0.1 -p "$1" +time=1 +tries=1 . SOA >/dev/null 2>&1 && return; sleep 0.1; done; }
# Stops with the server's log when it is not running (a zone it refused).
alive() { kill -0 "$1" 2>/dev/null || { echo "$2 is not running; its log:" >&2; tail -20 "$3" >&2; exit 1; }; }

# The zone: a quarter each A, AAAA, TXT and MX, as a typical zone mixes them.
python3 - "$records" > "$work/big.zone" <<'EOF'
import sys
n = int(sys.argv[1])
print("$ORIGIN big.test.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1")
for i in range(n - 3):
    k = i % 4
    if k == 0:   print(f"h{i} IN A 10.{(i>>16)&255}.{(i>>8)&255}.{i&255}")
    elif k == 1: print(f"h{i} IN AAAA 2001:db8::{i >> 16:x}:{i & 0xffff:x}")
    elif k == 2: print(f"h{i} IN TXT \"v=spf1 include:_spf.example.net ~all {i}\"")
    else:        print(f"h{i} IN MX 10 mail{i % 100}.big.test.")
EOF

primary_port=$(free_port)
cat > "$work/primary.toml" <<EOF
[server]
listen = ["127.0.0.1:$primary_port"]
api = "127.0.0.1:0"
state_dir = "primary-state"
[tsig.xfr]
algorithm = "hmac-sha256"
secret = "$secret"
[[zone]]
origin = "big.test"
file = "big.zone"
allow_transfer = [{ from = "127.0.0.1", tsig = "xfr" }]
EOF
start=$(date +%s.%N)
"$gslb" serve -c "$work/primary.toml" >"$work/primary.log" 2>&1 &
pids+=($!); primary=$!
wait_port "$primary_port"
alive "$primary" primary "$work/primary.log"
loaded=$(date +%s.%N)
echo "primary: $records records loaded in $(echo "$loaded - $start" | bc) s, RSS $(( $(rss_kib $primary) / 1024 )) MiB"

echo "primary: CPU to load $(cpu_ms $primary) ms"
for round in $(seq 1 "$rounds"); do
    c0=$(cpu_ms $primary)
    t0=$(date +%s.%N)
    out=$(dig @127.0.0.1 -p "$primary_port" big.test AXFR -y "hmac-sha256:xfr:$secret" +time=30 | tail -5)
    t1=$(date +%s.%N)
    c1=$(cpu_ms $primary)
    size=$(echo "$out" | sed -n 's/.*XFR size: \([0-9]*\) records (messages \([0-9]*\), bytes \([0-9]*\)).*/\1 records, \2 messages, \3 bytes/p')
    echo "AXFR out round $round: $(echo "$t1 - $t0" | bc) s wall (dig), primary CPU $((c1 - c0)) ms, $size"
done
echo "primary after $rounds transfers: RSS $(( $(rss_kib $primary) / 1024 )) MiB, peak $(( $(hwm_kib $primary) / 1024 )) MiB"

# gslb as secondary of the primary above.
secondary_port=$(free_port)
cat > "$work/secondary.toml" <<EOF
[server]
listen = ["127.0.0.1:$secondary_port"]
api = "127.0.0.1:0"
state_dir = "secondary-state"
[tsig.xfr]
algorithm = "hmac-sha256"
secret = "$secret"
[[zone]]
origin = "big.test"
primaries = ["127.0.0.1:$primary_port"]
tsig = "xfr"
EOF
t0=$(date +%s.%N)
"$gslb" serve -c "$work/secondary.toml" >"$work/secondary.log" 2>&1 &
pids+=($!); secondary=$!
wait_port "$secondary_port"
alive "$secondary" secondary "$work/secondary.log"
for _ in $(seq 1 1200); do
    [ "$(dig @127.0.0.1 -p "$secondary_port" +short h0.big.test A)" = "10.0.0.0" ] && break
    sleep 0.05
done
t1=$(date +%s.%N)
echo "secondary: start to serving the transferred zone in $(echo "$t1 - $t0" | bc) s, CPU $(cpu_ms $secondary) ms; RSS $(( $(rss_kib $secondary) / 1024 )) MiB, peak $(( $(hwm_kib $secondary) / 1024 )) MiB"
grep -o 'transfer in .*' "$work/secondary.log" | head -1 | sed 's/\x1b\[[0-9;]*m//g' || true

# Knot as secondary (when installed).
if command -v knotd >/dev/null 2>&1; then
    knot_port=$(free_port)
    mkdir -p "$work/knot"
    cat > "$work/knot/knot.conf" <<EOF
server:
    rundir: "$work/knot"
    listen: 127.0.0.1@$knot_port
log:
  - target: stderr
    any: info
database:
    storage: "$work/knot"
key:
  - id: xfr
    algorithm: hmac-sha256
    secret: $secret
remote:
  - id: gslb
    address: 127.0.0.1@$primary_port
    key: xfr
template:
  - id: default
    storage: "$work/knot"
zone:
  - domain: big.test
    master: gslb
EOF
    knotd -c "$work/knot/knot.conf" >"$work/knot/knot.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 600); do grep -q "AXFR, incoming.*finished" "$work/knot/knot.log" && break; sleep 0.1; done
    grep -o "AXFR, incoming.*finished.*" "$work/knot/knot.log" | head -1
fi
