#!/usr/bin/env bash
# Reload storm: RELOADS reloads through the admin API (good and bad
# configurations alternating; every 10th good one also swaps the GeoIP
# database between a GeoIP2-City-layout file with subdivision codes and an
# ip-location-db flat file with subdivision names, which must answer alike)
# while dnsperf sends a bounded load and a checker sends ECS queries whose
# right answers are known. Prints the figures and fails on any lost query,
# wrong answer (another address, SERVFAIL, REFUSED), unexpected reload
# result, or a dead server.
#
#   scripts/reload-storm.sh [RELOADS]      # default 1000 (10..5000)
#   GSLB_BIN=target/debug/gslb scripts/reload-storm.sh   # skip the release build
#   STORM_QPS=2000 scripts/reload-storm.sh               # dnsperf rate (default 2000)
#
# Needs dnsperf, curl and /usr/bin/python3 with dnspython (.ci/run installs
# them). Loopback only; every phase is bounded by `timeout`.
set -euo pipefail

reloads="${1:-1000}"
if ! [[ "$reloads" =~ ^[0-9]+$ ]] || ((reloads < 10 || reloads > 5000)); then
  echo "usage: $0 [RELOADS]   (10..5000, default 1000)" >&2
  exit 2
fi
qps="${STORM_QPS:-2000}"

cd "$(dirname "$0")/.."
if [[ -z "${GSLB_BIN:-}" ]]; then
  cargo build --release --bin gslb
  GSLB_BIN=target/release/gslb
fi
bin="$(realpath "$GSLB_BIN")"

work="$(mktemp -d)"
server_pid=""
checker_pid=""
cleanup() {
  [[ -n "$checker_pid" ]] && kill "$checker_pid" 2>/dev/null || true
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- data: a zone, two equivalent databases, good and bad configurations ---
cat >"$work/storm.test.zone" <<'EOF'
$TTL 300
@ SOA ns1 hostmaster 1 7200 900 1209600 60
@ NS ns1
ns1 A 192.0.2.53
static A 192.0.2.1
EOF
cat >"$work/codes.csv" <<'EOF'
network,country,continent,subdivision,latitude,longitude
81.2.69.0/24,GB,EU,ENG,51.51,-0.09
216.160.83.0/24,US,NA,WA,47.25,-122.31
89.160.20.0/24,CH,EU,ZH,47.37,8.54
2001:218::/32,JP,AS,13,35.69,139.69
EOF
# The same places, subdivisions as names (the flat layout's `state1`).
cat >"$work/names.csv" <<'EOF'
network,country,continent,subdivision,latitude,longitude,subdivision_name
81.2.69.0/24,GB,EU,,51.51,-0.09,England
216.160.83.0/24,US,NA,,47.25,-122.31,Washington
89.160.20.0/24,CH,EU,,47.37,8.54,Zürich
2001:218::/32,JP,AS,,35.69,139.69,Tokyo
EOF
"$bin" geoip build "$work/codes.csv" "$work/codes.mmdb" >/dev/null
"$bin" geoip build --layout flat "$work/names.csv" "$work/names.mmdb" >/dev/null
cp "$work/codes.mmdb" "$work/geo.mmdb"

config() { # $1: variant (1, 2 or bad)
  local extra="" pools='["eu", "us", "ap"]'
  case "$1" in
  2) extra=$'[pools.spare]\nendpoints = [{ address = "192.0.2.250" }]' ;;
  bad) pools='["eu", "us", "mars"]' ;;
  esac
  cat <<EOF
# reload storm, variant $1
[server]
api_token = "reload-storm-token"
[[zone]]
origin = "storm.test"
file = "storm.test.zone"
[geoip]
database = "geo.mmdb"
[pools.eu]
endpoints = [{ address = "192.0.2.10" }]
[pools.us]
endpoints = [{ address = "198.51.100.10" }]
[pools.ap]
endpoints = [{ address = "203.0.113.10" }, { address = "2001:db8:f::10" }]
$extra
[services."www.storm.test"]
policy = "geo"
pools = $pools
ttl = "30s"
[services."www.storm.test".geo]
subdivision = { "US-WA" = ["ap", "us"], "CH-ZH" = ["us", "eu"] }
country = { GB = ["eu", "us"] }
continent = { AS = ["ap", "us"] }
default = ["us"]
EOF
}
config 1 >"$work/gslb.toml"
"$bin" check --strict -c "$work/gslb.toml" >/dev/null 2>"$work/check.log" ||
  { cat "$work/check.log" >&2; exit 1; }

# --- the server ---
"$bin" serve -c "$work/gslb.toml" --listen 127.0.0.1:0 --api 127.0.0.1:0 \
  >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 100); do
  grep -q '^listening on' "$work/server.out" 2>/dev/null && break
  sleep 0.1
done
dns="$(sed -n 's/^listening on \([0-9.]*:[0-9]*\) .*/\1/p' "$work/server.out" | head -1)"
api="$(sed -n 's#^admin api listening on http://\([^/]*\)/.*#\1#p' "$work/server.out" | head -1)"
[[ -n "$dns" && -n "$api" ]] || { echo "server did not start" >&2; cat "$work/server.err" >&2; exit 1; }
host="${dns%:*}" port="${dns##*:}"
rss() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }
rss_before="$(rss)"

# --- the checker: ECS queries with known answers, until told to stop ---
cat >"$work/checker.py" <<'EOF'
import socket, sys, time, os
import dns.edns, dns.message, dns.query, dns.rcode
host, port, stop, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cases = [  # (subnet, prefix, type, right answer)
    ("81.2.69.0", 24, "A", "192.0.2.10"),        # country GB
    ("216.160.83.0", 24, "A", "203.0.113.10"),   # subdivision US-WA (code or name)
    ("89.160.20.0", 24, "A", "198.51.100.10"),   # subdivision CH-ZH (ZH or Zürich)
    ("2001:218::", 32, "AAAA", "2001:db8:f::10"), # continent AS
    ("192.0.2.0", 24, "A", "198.51.100.10"),     # default
]
sent = lost = wrong = 0
examples = []
i = 0
while not os.path.exists(stop):
    subnet, prefix, qtype, right = cases[i % len(cases)]
    i += 1
    q = dns.message.make_query("www.storm.test", qtype, use_edns=0,
                               options=[dns.edns.ECSOption(subnet, prefix)])
    sent += 1
    try:
        r = dns.query.udp(q, host, port=port, timeout=2)
    except Exception:
        lost += 1
        continue
    got = sorted(rr.to_text() for rrset in r.answer for rr in rrset)
    if r.rcode() != dns.rcode.NOERROR or got != [right]:
        wrong += 1
        if len(examples) < 5:
            examples.append(f"{subnet}/{prefix} {qtype}: {dns.rcode.to_text(r.rcode())} {got}")
    time.sleep(0.002)
with open(out, "w") as f:
    f.write(f"{sent} {lost} {wrong}\n" + "\n".join(examples) + "\n")
EOF
/usr/bin/python3 "$work/checker.py" "$host" "$port" "$work/stop" "$work/checker.out" &
checker_pid=$!

# --- dnsperf: bounded load in 10 s rounds while the storm lasts ---
printf 'www.storm.test A\nwww.storm.test AAAA\nstatic.storm.test A\n' >"$work/queries.txt"
(
  while [[ ! -e "$work/stop" ]]; do
    timeout 20 dnsperf -s "$host" -p "$port" -d "$work/queries.txt" -l 10 -Q "$qps" \
      -c 4 -t 2 >>"$work/dnsperf.log" 2>&1 || true
  done
) &
load_pid=$!
sleep 1

# --- the storm ---
ok=0 refused=0 unexpected=0 swaps=0 throttled=0
start_ms="$(($(date +%s%N) / 1000000))"
for ((i = 1; i <= reloads; i++)); do
  if ((i % 2 == 1)); then
    want=200
    good=$(((i / 2) % 2 + 1))
    config "$good" >"$work/gslb.toml.new"
    if (((i / 2) % 10 == 0)); then
      # Swap the database: rename over the served file (atomic).
      if ((swaps % 2 == 0)); then src=names.mmdb; else src=codes.mmdb; fi
      cp "$work/$src" "$work/geo.mmdb.new" && mv "$work/geo.mmdb.new" "$work/geo.mmdb"
      swaps=$((swaps + 1))
    fi
  else
    want=422
    config bad >"$work/gslb.toml.new"
  fi
  mv "$work/gslb.toml.new" "$work/gslb.toml"
  while :; do
    code="$(timeout 10 curl -s -o /dev/null -w '%{http_code}' -X POST \
      -H "Authorization: Bearer reload-storm-token" "http://$api/reload" || echo 000)"
    [[ "$code" == 429 ]] || break
    throttled=$((throttled + 1))
    sleep 0.05
  done
  case "$code" in
  200) ok=$((ok + 1)) ;;
  422) refused=$((refused + 1)) ;;
  esac
  [[ "$code" == "$want" ]] || unexpected=$((unexpected + 1))
done
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
elapsed="$((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000)))"
sleep 1
touch "$work/stop"
wait "$checker_pid" || true
checker_pid=""
timeout 30 bash -c "while kill -0 $load_pid 2>/dev/null; do sleep 0.2; done" || kill "$load_pid" 2>/dev/null || true

alive=yes
kill -0 "$server_pid" 2>/dev/null || alive=no
rss_after="$( [[ $alive == yes ]] && rss || echo 0)"
read -r c_sent c_lost c_wrong <"$work/checker.out"
p_sent="$(awk '/Queries sent:/ {s += $3} END {print s + 0}' "$work/dnsperf.log")"
p_done="$(awk '/Queries completed:/ {s += $3} END {print s + 0}' "$work/dnsperf.log")"
p_lost="$(awk '/Queries lost:/ {s += $3} END {print s + 0}' "$work/dnsperf.log")"
p_rounds="$(grep -c 'Queries sent:' "$work/dnsperf.log" || true)"

cat <<EOF
reload storm: $reloads reloads in ${elapsed}s ($ok ok, $refused refused as expected, $unexpected unexpected; $throttled API 429 retries), $swaps GeoIP database swaps
dnsperf ($p_rounds rounds of 10 s at ≤$qps q/s): $p_sent sent, $p_done completed, $p_lost lost
checker (ECS, known answers): $c_sent sent, $c_lost lost, $c_wrong wrong
server alive: $alive; RSS ${rss_before} kB -> ${rss_after} kB
EOF
tail -n +2 "$work/checker.out" | sed '/^$/d; s/^/  wrong: /'
if [[ $alive != yes || $unexpected != 0 || $p_lost != 0 || $c_lost != 0 || $c_wrong != 0 ]]; then
  echo "reload storm FAILED" >&2
  tail -n 20 "$work/server.err" >&2
  exit 1
fi
echo "reload storm passed"
