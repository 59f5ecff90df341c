#!/usr/bin/env bash
# Scale benchmark (issue #6): a city-sized GeoIP database and a configuration
# with 100,000 static records and 10,000 services over 1,000 pools, loaded by
# the real target/release/gslb. Measures load time and memory (`gslb check`,
# `gslb serve` until it answers, VmRSS/VmHWM), the compiled table sizes the
# server logs, and the answer rate (dnsperf) against the same run on the small
# shipped config. Loopback only; every load is bounded (dnsperf -l), every
# wait has a deadline. See benches/README.md, "Scale".
#
#   benches/scale.sh                # generate (once) and measure
#   benches/scale.sh --help         # this text
#
# Knobs (environment, defaults in brackets):
#   OUT [target/bench-scale]   generated inputs and results (never committed)
#   V4 [3700000] V6 [300000]   GeoIP networks to generate (regenerated when changed)
#   RECORDS [100000] SERVICES [10000] POOLS [1000]
#   DURATION [5] seconds per dnsperf run   WARMUP [1] s of load before each run
#   ROUNDS [2] small/scale rounds per query kind   CLIENTS [10] dnsperf -c   OUTSTANDING [100] -q
#   SERVER_CPU [1] / CLIENT_CPU [0] taskset cores (server and dnsperf pinned apart)
#   START_DEADLINE [180] s for a server to answer   NO_BUILD [0] skip cargo build --release
set -uo pipefail

case ${1:-} in
  "") ;;
  -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/target/bench-scale}
V4=${V4:-3700000}
V6=${V6:-300000}
RECORDS=${RECORDS:-100000}
SERVICES=${SERVICES:-10000}
POOLS=${POOLS:-1000}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-10}
OUTSTANDING=${OUTSTANDING:-100}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
START_DEADLINE=${START_DEADLINE:-180}
GSLB=$ROOT/target/release/gslb
GEN=$ROOT/benches/support/scale_gen.py

log() { printf '[scale %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in dig dnsperf python3 taskset; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dnsutils dnsperf python3 util-linux)"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"
if [[ ${NO_BUILD:-0} != 1 ]]; then
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet) || die "build failed"
fi
[[ -x $GSLB ]] || die "$GSLB not built"
mkdir -p "$OUT"
RESULTS=$OUT/results.csv
echo "metric,value,unit" >"$RESULTS"
record() { echo "$1,$2,$3" >>"$RESULTS"; }

# --- servers --------------------------------------------------------------
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
}
trap cleanup EXIT

# Runs CMD... under /usr/bin/time; sets ELAPSED (s) and MAXRSS (KiB).
timed() {  # LOGFILE CMD...
  local logfile=$1; shift
  /usr/bin/time -f 'TIME %e %M' "$@" >"$logfile" 2>&1
  local status=$?
  read -r _ ELAPSED MAXRSS < <(grep '^TIME ' "$logfile" | tail -1)
  return $status
}

# Starts `gslb serve -c CONFIG` on a free loopback port, pinned to
# SERVER_CPU; waits until NAME/TYPE answers. Sets SERVER_PID, PORT, STARTUP (s).
start_server() {  # CONFIG LOG NAME TYPE
  local config=$1 logfile=$2 name=$3 type=$4 start
  start=$(date +%s.%N)
  taskset -c "$SERVER_CPU" "$GSLB" serve -c "$config" --listen 127.0.0.1:0 --api 127.0.0.1:0 \
    >"$logfile.out" 2>"$logfile" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  PORT=
  local deadline=$((SECONDS + START_DEADLINE))
  while ((SECONDS < deadline)); do
    kill -0 "$SERVER_PID" 2>/dev/null || die "server exited early; see $logfile"
    if [[ -z $PORT ]]; then
      PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$logfile.out" | head -1)
    fi
    # An answer record, not dig's ";; ..." complaint about a timeout.
    if [[ -n $PORT ]] && dig +norec +short +time=1 +tries=1 -p "$PORT" @127.0.0.1 "$name" "$type" 2>/dev/null | grep -qv '^;'; then
      STARTUP=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { printf "%.2f", a - b }')
      return 0
    fi
    sleep 0.05
  done
  die "server did not answer $name within ${START_DEADLINE}s; see $logfile"
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
}

proc_kib() {  # PID FIELD (VmRSS, VmHWM)
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# Field of the last log line matching MESSAGE, e.g. log_field LOG "geoip database loaded" networks.
log_field() {  # LOG MESSAGE FIELD
  sed 's/\x1b\[[0-9;]*m//g' "$1" | grep "$2" | tail -1 | sed -n "s/.* $3=\([^ ]*\).*/\1/p"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# --- generate ----------------------------------------------------------------
CSV=$OUT/city.csv
MMDB=$OUT/city.mmdb
STAMP="v4=$V4 v6=$V6"
if [[ ! -f $MMDB || $(cat "$OUT/city.stamp" 2>/dev/null) != "$STAMP" ]]; then
  log "generating a GeoIP source of ~$V4 IPv4 + $V6 IPv6 networks"
  python3 "$GEN" geoip "$CSV" --v4 "$V4" --v6 "$V6" || die "generator failed"
  log "gslb geoip build"
  timed "$OUT/geoip-build.log" "$GSLB" geoip build "$CSV" "$MMDB" || die "geoip build failed; see $OUT/geoip-build.log"
  echo "$ELAPSED $MAXRSS" >"$OUT/geoip-build.time"
  echo "$STAMP" >"$OUT/city.stamp"
fi
read -r build_s build_kib <"$OUT/geoip-build.time"
record geoip_build_seconds "$build_s" s
record geoip_build_max_rss "$(mib "$build_kib")" MiB
record mmdb_size "$(mib "$(($(stat -c %s "$MMDB") / 1024))")" MiB

RUN=$OUT/run
log "generating $RECORDS records, $SERVICES services over $POOLS pools"
python3 "$GEN" config "$RUN" --geoip "$MMDB" --records "$RECORDS" --services "$SERVICES" --pools "$POOLS" \
  || die "config generator failed"
SMALL=$OUT/small
mkdir -p "$SMALL"
python3 "$GEN" small "$SMALL" || die "query generator failed"
# The shipped config, with its paths made absolute and one UDP worker (as the
# generated one has), so both servers are measured alike.
sed -e "s#\"\.\./#\"$ROOT/#" -e 's/^\[server\]$/[server]\nudp_workers = 1/' "$ROOT/config/gslb.toml" >"$SMALL/gslb.toml"
# The city database alone, mapped to three regions by continent (issue #6).
cat >"$OUT/city3.toml" <<EOF
[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
[[zone]]
origin = "example.test"
file = "$ROOT/zones/example.test.zone"
[geoip]
database = "$MMDB"
[pools.eu]
endpoints = [{ address = "192.0.2.10" }]
[pools.us]
endpoints = [{ address = "198.51.100.10" }]
[pools.ap]
endpoints = [{ address = "203.0.113.10" }]
[services."www.example.test"]
policy = "geo"
[services."www.example.test".geo]
continent = { EU = ["eu", "us", "ap"], AF = ["eu", "us", "ap"], NA = ["us", "eu", "ap"], SA = ["us", "eu", "ap"], AS = ["ap", "us", "eu"], OC = ["ap", "us", "eu"] }
default = ["us", "eu", "ap"]
EOF

# --- load: gslb check --------------------------------------------------------
for which in small city3 scale; do
  case $which in
    small) config=$SMALL/gslb.toml ;;
    city3) config=$OUT/city3.toml ;;
    scale) config=$RUN/scale.toml ;;
  esac
  log "gslb check ($which)"
  timed "$OUT/check-$which.log" "$GSLB" check -c "$config" || die "check failed; see $OUT/check-$which.log"
  record "check_${which}_seconds" "$ELAPSED" s
  record "check_${which}_max_rss" "$(mib "$MAXRSS")" MiB
done
networks=$(log_field "$OUT/check-city3.log" "geoip database loaded" networks)
locations=$(log_field "$OUT/check-city3.log" "geoip database loaded" locations)
record geoip_networks "$networks" networks
record geoip_locations "$locations" locations
record city3_table_prefixes "$(log_field "$OUT/check-city3.log" "services compiled" table_prefixes)" prefixes
record city3_table_ranges "$(log_field "$OUT/check-city3.log" "services compiled" table_ranges)" ranges
for field in region_tables table_prefixes table_ranges largest_table_prefixes; do
  record "scale_$field" "$(log_field "$OUT/check-scale.log" "services compiled" "$field")" count
done

# --- serve: startup, memory, answers, rate -----------------------------------
dnsperf_run() {  # PORT KIND SECONDS OUTFILE
  local port=$1 kind=$2 seconds=$3 outfile=$4 dir=$5 args=()
  case $kind in
    records) args=(-d "$dir/queries-records.txt") ;;
    services) args=(-d "$dir/queries-services.txt") ;;
    services-ecs) args=(-B -d "$dir/queries-services-ecs.bin") ;;
  esac
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -l "$seconds" -c "$CLIENTS" \
    -q "$OUTSTANDING" -t 2 "${args[@]}" >"$outfile" 2>&1
}
qps_of() { awk '/Queries per second:/ { print $4 }' "$1"; }
completed_of() { awk '/Queries completed:/ { print $3 }' "$1"; }
# Server CPU time (user + system, all threads) in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
lost_of() { awk '/Queries lost:/ { print $3 }' "$1"; }
noerror_of() { sed -n 's/.*NOERROR \([0-9]*\) .*/\1/p' "$1"; }

declare -A QPS LOST CPU_US
for which in small scale; do
  if [[ $which == small ]]; then
    config=$SMALL/gslb.toml probe=www.example.test queries=$SMALL
  else
    config=$RUN/scale.toml probe=s0.svc.scale.test queries=$RUN
  fi
  log "gslb serve ($which)"
  start_server "$config" "$OUT/serve-$which.log" "$probe" A
  record "serve_${which}_startup_seconds" "$STARTUP" s
  record "serve_${which}_vmrss_loaded" "$(mib "$(proc_kib "$SERVER_PID" VmRSS)")" MiB
  record "serve_${which}_vmhwm_loaded" "$(mib "$(proc_kib "$SERVER_PID" VmHWM)")" MiB
  if [[ $which == scale ]]; then
    # Spot checks: static records of each kind and services of each policy.
    {
      for q in "h0.g0.scale.test A" "h40.g40.scale.test AAAA" "h60.g60.scale.test TXT" \
               "h75.g75.scale.test MX" "h99985.g485.scale.test CNAME" "h99999.g499.scale.test CNAME" \
               "s0.svc.scale.test A" "s11.svc.scale.test A" "s14.svc.scale.test A" \
               "s18.svc.scale.test A" "s9999.svc.scale.test A"; do
        read -r n t <<<"$q"
        printf '%s %s -> %s\n' "$n" "$t" "$(dig +norec +short -p "$PORT" @127.0.0.1 "$n" "$t" +subnet=81.2.69.0/24 | tr '\n' ' ')"
      done
    } >"$OUT/spot-checks.txt"
    ! grep -q -- '-> $' "$OUT/spot-checks.txt" || die "a spot check got no answer; see $OUT/spot-checks.txt"
  fi
  for kind in records services services-ecs; do
    for ((round = 1; round <= ROUNDS; round++)); do
      ((WARMUP > 0)) && dnsperf_run "$PORT" "$kind" "$WARMUP" /dev/null "$queries"
      raw=$OUT/dnsperf-$which-$kind-$round.txt
      before=$(cpu_ticks "$SERVER_PID")
      dnsperf_run "$PORT" "$kind" "$DURATION" "$raw" "$queries"
      after=$(cpu_ticks "$SERVER_PID")
      qps=$(qps_of "$raw")
      [[ -n $qps ]] || die "dnsperf failed; see $raw"
      us=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$(completed_of "$raw")" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
      QPS[$which-$kind]="${QPS[$which-$kind]:-} $qps"
      CPU_US[$which-$kind]="${CPU_US[$which-$kind]:-} $us"
      LOST[$which-$kind]=$(( ${LOST[$which-$kind]:-0} + $(lost_of "$raw") ))
      log "$which $kind round $round: $qps q/s, server CPU $us us/q, NOERROR $(noerror_of "$raw")"
    done
  done
  record "serve_${which}_vmrss_after_load" "$(mib "$(proc_kib "$SERVER_PID" VmRSS)")" MiB
  record "serve_${which}_vmhwm_after_load" "$(mib "$(proc_kib "$SERVER_PID" VmHWM)")" MiB
  stop_server
done

mean() { echo "$*" | tr ' ' '\n' | awk 'NF { s += $1; n++ } END { if (n) printf "%.0f", s / n }'; }
mean2() { echo "$*" | tr ' ' '\n' | awk 'NF { s += $1; n++ } END { if (n) printf "%.2f", s / n }'; }

# --- report --------------------------------------------------------------------
get() { awk -F, -v k="$1" '$1 == k { print $2 }' "$RESULTS"; }
TABLE=$OUT/results.md
{
  echo "## gslb scale run $(date -u +%FT%TZ) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null))"
  echo
  echo "Inputs: GeoIP $(get geoip_networks) networks ($(get geoip_locations) locations), $(get mmdb_size) MiB mmdb;"
  echo "$RECORDS static records, $SERVICES services over $POOLS pools."
  echo
  echo "| load | wall s | max RSS MiB |"
  echo "|---|---|---|"
  echo "| gslb geoip build (city CSV -> mmdb) | $(get geoip_build_seconds) | $(get geoip_build_max_rss) |"
  echo "| gslb check, shipped config | $(get check_small_seconds) | $(get check_small_max_rss) |"
  echo "| gslb check, city DB, 3 regions by continent | $(get check_city3_seconds) | $(get check_city3_max_rss) |"
  echo "| gslb check, scale config (city DB + records + services) | $(get check_scale_seconds) | $(get check_scale_max_rss) |"
  echo
  echo "| serve | startup s (until it answers) | VmRSS MiB | VmHWM MiB | VmRSS after load MiB |"
  echo "|---|---|---|---|---|"
  for which in small scale; do
    echo "| $which | $(get serve_${which}_startup_seconds) | $(get serve_${which}_vmrss_loaded) | $(get serve_${which}_vmhwm_loaded) | $(get serve_${which}_vmrss_after_load) |"
  done
  echo
  echo "Compiled tables: city DB by continent to 3 regions: $(get city3_table_ranges) ranges in $(get city3_table_prefixes) prefixes."
  echo "Scale config: $(get scale_region_tables) distinct region tables for $SERVICES services, $(get scale_table_prefixes) prefixes in all (largest $(get scale_largest_table_prefixes))."
  echo
  echo "| answer rate (dnsperf -c $CLIENTS -q $OUTSTANDING, ${DURATION}s x $ROUNDS) | shipped q/s | scale q/s | ratio | shipped CPU us/q | scale CPU us/q | ratio | lost |"
  echo "|---|---|---|---|---|---|---|---|"
  for kind in records services services-ecs; do
    small=$(mean "${QPS[small-$kind]}")
    scale=$(mean "${QPS[scale-$kind]}")
    ratio=$(awk -v a="$scale" -v b="$small" 'BEGIN { printf "%.2f", a / b }')
    small_us=$(mean2 "${CPU_US[small-$kind]}")
    scale_us=$(mean2 "${CPU_US[scale-$kind]}")
    cpu_ratio=$(awk -v a="$scale_us" -v b="$small_us" 'BEGIN { printf "%.2f", a / b }')
    record "qps_small_$kind" "$small" q/s
    record "qps_scale_$kind" "$scale" q/s
    record "qps_ratio_$kind" "$ratio" ratio
    record "cpu_us_small_$kind" "$small_us" us/q
    record "cpu_us_scale_$kind" "$scale_us" us/q
    record "cpu_ratio_$kind" "$cpu_ratio" ratio
    echo "| $kind | $small | $scale | $ratio | $small_us | $scale_us | $cpu_ratio | $((LOST[small-$kind] + LOST[scale-$kind])) |"
  done
  echo
  echo "q/s ratio > 1: the scale config answered faster; CPU ratio < 1: it used less server CPU per answer."
  echo "dnsperf needs about a core for ~100k q/s, so with 2 cores q/s often measures the client; CPU per answer does not."
} >"$TABLE"
cat "$TABLE"
log "results in $TABLE and $RESULTS"
