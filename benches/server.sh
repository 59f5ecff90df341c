#!/usr/bin/env bash
# Whole-server benchmark: gslb against gdnsd on the same machine, in the same
# run, with equivalent configurations. Loopback only; every load is bounded
# (dnsperf -l), every wait has a deadline. See benches/README.md.
#
#   benches/server.sh                 # pinned A/B comparison, 1 UDP worker each
#   benches/server.sh --callgrind     # user-space instructions per answered query
#   benches/server.sh --dnssec        # the same, signed: DO=1 against DO=0, gslb, Knot
#                                     # (dnssec-signing + mod-geoip) and PowerDNS (LUA
#                                     # records, online signing) in one run
#   benches/server.sh --scaling       # 1 worker pinned vs 2 workers unpinned
#   benches/server.sh --configs DIR   # only write both servers' configs into DIR
#
# Needs ../shared/bench (the team's peer harness: query generator, geo
# checks, helpers) and ../shared/geoip (MaxMind's test databases) next to the
# repository, or SHARED_BENCH=/path/to/shared/bench. Installs gdnsd, dnsperf,
# valgrind, dig, taskset and ss from Debian when missing (root only); with
# --dnssec also knot, knot-module-geoip, pdns-server, pdns-backend-bind and
# pdns-backend-geoip.
#
# Knobs (environment, defaults in brackets):
#   DURATION [5] seconds per measurement    WARMUP [1] seconds of load before each
#   ROUNDS [2] A/B rounds per query kind    KINDS [static geo geo-ecs]
#   CLIENTS [10] dnsperf -c   OUTSTANDING [100] dnsperf -q   ECS_N [50000] ECS queries
#   SERVER_CPU [1] / CLIENT_CPU [0] taskset cores   GSLB_PORT [5420] GDNSD_PORT [5421]
#   LATENCY [1] dnsperf -v: per-response latencies for p50/p99 (more client work per answer)
#   QUIET_MAX [15] % machine busy / QUIET_SECS [2] / QUIET_WAIT [60] s: wait for an
#     idle machine before each measurement, at most QUIET_WAIT
#   FOREIGN_MAX [10] / RETRIES [2]: a measurement during which processes outside the
#     benchmark used more than FOREIGN_MAX % of one core is repeated, up to RETRIES times
#   CG_DURATION [10] CG_WARMUP [2] CG_CLIENTS [4] CG_OUTSTANDING [20] CG_KINDS [$KINDS]
#   CG_TOP [30] rows per section of the callgrind profiles   CG_SERVERS [gslb gdnsd]
#   CG_RATE [] dnsperf -Q under callgrind: a fixed rate of queries per second (e.g. 2500,
#     where each packet wakes a worker alone) instead of saturating the server
#     (--dnssec: CG_SERVERS [gslb knot pdns], CG_KINDS [static-edns static-do geo-ecs geo-ecs-do]:
#     static-edns/geo-ecs carry an OPT record without the DO bit, *-do the same with it)
#   KNOT_PORT [5422]  PDNS_PORT [5423]
#   CG_ARGS [] more valgrind options (e.g. --dump-instr=yes for per-instruction costs)
#   SCALE_WORKERS [1 2]   OUT_DIR [target/bench-server/run-STAMP]   KEEP_WORK [0]
#   GSLB_BIN [target/release/gslb; built with cargo build --release unless NO_BUILD=1]
#   GSLB_BASE_BIN [] another gslb build (an earlier commit's), served with the same config
#     as server "gslb-base" when CG_SERVERS names it (--callgrind: before/after in one run)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$ROOT/../shared/bench}

MODE=compare
CONFIG_DIR=
case ${1:-} in
  "") ;;
  --callgrind) MODE=callgrind ;;
  --dnssec) MODE=dnssec ;;
  --scaling) MODE=scaling ;;
  --configs) MODE=configs; CONFIG_DIR=${2:-}; [[ -n $CONFIG_DIR ]] || { echo "usage: $0 --configs DIR" >&2; exit 2; } ;;
  -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

if [[ ! -f $SHARED_BENCH/lib/common.sh || ! -f $SHARED_BENCH/lib/gen_queries.py ]]; then
  echo "server.sh: needs the shared DNS bench harness at $SHARED_BENCH" >&2
  echo "  (lib/common.sh, lib/gen_queries.py, lib/check_geo.py, lib/cpuwatch.py and ../geoip/GeoLite2-City-Test.mmdb);" >&2
  echo "  check out shared/ next to the repository or set SHARED_BENCH=/path/to/shared/bench" >&2
  exit 1
fi
BENCH_DIR=$(cd "$SHARED_BENCH" && pwd)
# Helpers reused from the shared harness: log, start_bg, stop_pid, stop_all,
# pin_tree, is_alive, port_busy, wait_dns, geo_check; GEOIP_DB (MaxMind test City DB).
# shellcheck source=/dev/null
source "$BENCH_DIR/lib/common.sh"

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-2}
KINDS=${KINDS:-static geo geo-ecs}
CLIENTS=${CLIENTS:-10}
OUTSTANDING=${OUTSTANDING:-100}
ECS_N=${ECS_N:-50000}
GSLB_PORT=${GSLB_PORT:-5420}
GDNSD_PORT=${GDNSD_PORT:-5421}
KNOT_PORT=${KNOT_PORT:-5422}
PDNS_PORT=${PDNS_PORT:-5423}
LATENCY=${LATENCY:-1}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_SECS=${QUIET_SECS:-2}
QUIET_WAIT=${QUIET_WAIT:-60}
FOREIGN_MAX=${FOREIGN_MAX:-10}
RETRIES=${RETRIES:-2}
CG_DURATION=${CG_DURATION:-10}
CG_WARMUP=${CG_WARMUP:-2}
CG_CLIENTS=${CG_CLIENTS:-4}
CG_OUTSTANDING=${CG_OUTSTANDING:-20}
CG_TOP=${CG_TOP:-30}
if [[ $MODE == dnssec ]]; then
  CG_KINDS=${CG_KINDS:-static-edns static-do geo-ecs geo-ecs-do}
  CG_SERVERS=${CG_SERVERS:-gslb knot pdns}
else
  CG_KINDS=${CG_KINDS:-$KINDS}
  CG_SERVERS=${CG_SERVERS:-gslb gdnsd}
fi
SCALE_WORKERS=${SCALE_WORKERS:-1 2}
HZ=$(getconf CLK_TCK)

# ------------------------------------------------------------------ configs
# Equivalent configurations: the same zone (example.test, static.example.test
# A 192.0.2.1), the same three regions (eu 192.0.2.10, us .20, ap .30) and
# continent map (default eu; EU/AF eu; NA/SA us; AS/OC ap, each followed by
# the others as fallbacks), the same GeoIP database, ECS on with the whole
# source prefix used (gdnsd does not cap it, so gslb's caps are 32/128 here).
# No health checks on either side (gdnsd: service_types => up).

write_gslb_config() {  # DIR PORT WORKERS
  local d=$1 port=$2 workers=$3 signing=
  mkdir -p "$d"
  if [[ $MODE == dnssec ]]; then
    # A fresh CSK (ECDSA P-256, as Knot's below); every answer is signed at load.
    local key
    key=$("$GSLB_BIN" dnssec keygen example.test --dir "$d/keys") || return 1
    signing="dnssec = true
dnssec_keys = [\"$key\"]"
  fi
  cat >"$d/example.test.zone" <<'EOF'
$ORIGIN example.test.
$TTL 300
@       SOA  ns1 hostmaster 1 7200 1800 259200 300
@       NS   ns1
ns1     A    192.0.2.53
static  A    192.0.2.1
EOF
  cat >"$d/gslb.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
api = "127.0.0.1:$((port + 8))"
udp_workers = $workers

[[zone]]
origin = "example.test"
file = "example.test.zone"
$signing

[geoip]
database = "$GEOIP_DB"
fields = "auto"

[ecs]
enabled = true
max_source_prefix_v4 = 32
max_source_prefix_v6 = 128

[pools.eu]
endpoints = [{ address = "192.0.2.10" }]
[pools.us]
endpoints = [{ address = "192.0.2.20" }]
[pools.ap]
endpoints = [{ address = "192.0.2.30" }]

[services."www.example.test"]
policy = "geo"
ttl = 60
[services."www.example.test".geo]
continent = { EU = ["eu", "us", "ap"], AF = ["eu", "us", "ap"], NA = ["us", "eu", "ap"], SA = ["us", "eu", "ap"], AS = ["ap", "us", "eu"], OC = ["ap", "us", "eu"] }
default = ["eu", "us", "ap"]
EOF
  CMD=("$GSLB_BIN" serve -c "$d/gslb.toml")
}

# Adapted from cfg_gdnsd in shared/bench/lib/common.sh, without the HTTP
# health checks (gslb runs none either).
write_gdnsd_config() {  # DIR PORT WORKERS
  local d=$1 port=$2 workers=$3
  mkdir -p "$d/zones" "$d/run" "$d/state"
  cat >"$d/config" <<EOF
options => {
  listen => { 127.0.0.1:$port => { udp_threads => $workers, tcp_threads => 1 } }
  run_dir => $d/run
  state_dir => $d/state
  edns_client_subnet => true
}
plugins => {
  geoip => {
    maps => {
      regions => {
        geoip2_db => $GEOIP_DB
        datacenters => [eu, us, ap]
        map => {
          default => [eu, us, ap]
          EU => [eu, us, ap]
          AF => [eu, us, ap]
          NA => [us, eu, ap]
          SA => [us, eu, ap]
          AS => [ap, us, eu]
          OC => [ap, us, eu]
        }
      }
    }
    resources => {
      www => {
        map => regions
        service_types => up
        dcmap => { eu => 192.0.2.10, us => 192.0.2.20, ap => 192.0.2.30 }
      }
    }
  }
}
EOF
  cat >"$d/zones/example.test" <<'EOF'
$TTL 300
@       SOA  ns1 hostmaster 1 7200 1800 259200 300
@       NS   ns1
ns1     A    192.0.2.53
static  A    192.0.2.1
www  60 DYNA geoip!www
EOF
  CMD=(gdnsd -c "$d" start)
}

# Knot DNS signing the zone itself (dnssec-signing: on, one ECDSA P-256 CSK
# made with keymgr before the start, so mod-geoip finds it when the zone
# loads and signs every alternative answer then) and answering www from
# mod-geoip on continent codes: the same regions, order and default as
# gslb's map (the zone's own www record is the default answer).
write_knot_config() {  # DIR PORT WORKERS
  local d=$1 port=$2 workers=$3
  mkdir -p "$d/db"
  cat >"$d/example.test.zone" <<'EOF'
$ORIGIN example.test.
$TTL 300
@       SOA  ns1 hostmaster 1 7200 1800 259200 300
@       NS   ns1
ns1     A    192.0.2.53
static  A    192.0.2.1
www  60 A    192.0.2.10
EOF
  cat >"$d/geo.conf" <<'EOF'
www.example.test:
  - geo: "EU"
    A: 192.0.2.10
  - geo: "AF"
    A: 192.0.2.10
  - geo: "NA"
    A: 192.0.2.20
  - geo: "SA"
    A: 192.0.2.20
  - geo: "AS"
    A: 192.0.2.30
  - geo: "OC"
    A: 192.0.2.30
EOF
  cat >"$d/knot.conf" <<EOF
server:
    rundir: $d
    pidfile: $d/knot.pid
    listen: 127.0.0.1@$port
    udp-workers: $workers
    tcp-workers: 1
    background-workers: 1
    edns-client-subnet: on
log:
  - target: stderr
    any: notice
database:
    storage: $d/db
policy:
  - id: csk
    algorithm: ecdsap256sha256
    single-type-signing: on
    manual: on
template:
  - id: default
    storage: $d
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
mod-geoip:
  - id: geo
    config-file: $d/geo.conf
    ttl: 60
    mode: geodb
    geodb-file: $GEOIP_DB
    geodb-key: [ continent/code ]
zone:
  - domain: example.test
    module: mod-geoip/geo
    dnssec-signing: on
    dnssec-policy: csk
EOF
  keymgr -c "$d/knot.conf" example.test. generate algorithm=ecdsap256sha256 ksk=yes zsk=yes >/dev/null || return 1
  CMD=(knotd -c "$d/knot.conf")
}

# PowerDNS 4.7 signing online (its bind backend with a DNSSEC database and a
# CSK from `pdnsutil secure-zone`; signatures made per answer and kept in
# its signature cache) and answering www with a LUA record on the geoip
# backend's continentCode(): the same regions, order and default as gslb's
# map. Adapted from cfg_pdns_lua in ../shared/bench/lib/common.sh.
write_pdns_config() {  # DIR PORT WORKERS
  local d=$1 port=$2 workers=$3
  mkdir -p "$d"
  cat >"$d/pdns.conf" <<EOF
launch=bind,geoip
bind-config=$d/named.conf
bind-dnssec-db=$d/dnssec.sqlite3
geoip-database-files=mmdb:$GEOIP_DB
geoip-zones-file=$d/empty.yaml
enable-lua-records=yes
edns-subnet-processing=yes
local-address=127.0.0.1
local-port=$port
receiver-threads=$workers
daemon=no
guardian=no
disable-syslog=yes
write-pid=no
socket-dir=$d
webserver=no
api=no
loglevel=4
EOF
  echo 'domains: []' >"$d/empty.yaml"
  echo "zone \"example.test\" { type master; file \"$d/example.test.zone\"; };" >"$d/named.conf"
  # continentCode() returns lower-case codes in pdns 4.7.
  cat >"$d/example.test.zone" <<'EOF'
$ORIGIN example.test.
$TTL 300
@       SOA  ns1 hostmaster 1 7200 1800 259200 300
@       NS   ns1
ns1     A    192.0.2.53
static  A    192.0.2.1
www  60 LUA A ";local m={eu='192.0.2.10',af='192.0.2.10',na='192.0.2.20',sa='192.0.2.20',as='192.0.2.30',oc='192.0.2.30'} return m[continentCode()] or '192.0.2.10'"
EOF
  pdnsutil "--config-dir=$d" create-bind-db "$d/dnssec.sqlite3" >/dev/null 2>&1 &&
    pdnsutil "--config-dir=$d" secure-zone example.test >/dev/null 2>&1 || return 1
  CMD=(pdns_server "--config-dir=$d")
}

write_config() {  # SERVER DIR PORT WORKERS ; sets CMD
  case $1 in
    gslb) write_gslb_config "$2" "$3" "$4" ;;
    gslb-base) write_gslb_config "$2" "$3" "$4" && CMD[0]=$GSLB_BASE_BIN ;;
    gdnsd) write_gdnsd_config "$2" "$3" "$4" ;;
    knot) write_knot_config "$2" "$3" "$4" ;;
    pdns) write_pdns_config "$2" "$3" "$4" ;;
  esac
}

port_of_server() {  # SERVER -> its port
  case $1 in
    gdnsd) echo "$GDNSD_PORT" ;;
    knot) echo "$KNOT_PORT" ;;
    pdns) echo "$PDNS_PORT" ;;
    *) echo "$GSLB_PORT" ;;
  esac
}

GSLB_BIN=${GSLB_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/gslb}
[[ -f $GEOIP_DB ]] || { log "GeoIP test database not found: $GEOIP_DB"; exit 1; }

if [[ $MODE == configs ]]; then
  mkdir -p "$CONFIG_DIR"
  CONFIG_DIR=$(cd "$CONFIG_DIR" && pwd)
  write_config gslb "$CONFIG_DIR/gslb" "$GSLB_PORT" 1 && echo "gslb: ${CMD[*]}" >"$CONFIG_DIR/COMMANDS.txt"
  write_config gdnsd "$CONFIG_DIR/gdnsd" "$GDNSD_PORT" 1 && echo "gdnsd: ${CMD[*]}" >>"$CONFIG_DIR/COMMANDS.txt"
  log "configs written to $CONFIG_DIR"
  exit 0
fi

# ------------------------------------------------------------------ preflight
install_missing() {
  local pkgs=() cmd pkg
  for cmd in gdnsd:gdnsd dnsperf:dnsperf dig:dnsutils taskset:util-linux ss:iproute2 python3:python3 \
             $([[ $MODE == callgrind || $MODE == dnssec ]] && echo valgrind:valgrind callgrind_control:valgrind) \
             $([[ $MODE == dnssec ]] && echo knotd:knot keymgr:knot pdns_server:pdns-server); do
    command -v "${cmd%%:*}" >/dev/null 2>&1 || pkgs+=("${cmd#*:}")
  done
  if [[ $MODE == dnssec ]]; then
    local module
    for module in knot/modules-*/geoip.so:knot-module-geoip pdns/libbindbackend.so:pdns-backend-bind \
                  pdns/libgeoipbackend.so:pdns-backend-geoip; do
      compgen -G "/usr/lib/*/${module%%:*}" >/dev/null || pkgs+=("${module#*:}")
    done
  fi
  ((${#pkgs[@]})) || return 0
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
  if [[ $(id -u) != 0 ]]; then
    log "missing: ${pkgs[*]}; install them (apt-get install -y ${pkgs[*]}) or run as root"
    return 1
  fi
  log "installing ${pkgs[*]} from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}
install_missing || exit 1

if [[ ${NO_BUILD:-0} != 1 ]]; then
  log "building gslb (cargo build --release)"
  (cd "$ROOT" && cargo build --release --quiet) || { log "cargo build failed"; exit 1; }
fi
[[ -x $GSLB_BIN ]] || { log "gslb binary not found: $GSLB_BIN"; exit 1; }
(($(nproc) >= 2)) || log "WARNING: fewer than 2 CPUs; dnsperf and the server share a core"
for port in "$GSLB_PORT" "$GDNSD_PORT" "$KNOT_PORT" "$PDNS_PORT"; do
  if port_busy "$port"; then log "port $port is in use; set GSLB_PORT / GDNSD_PORT / KNOT_PORT / PDNS_PORT"; exit 1; fi
done

STAMP=$(date +%Y%m%d-%H%M%S)
OUT_DIR=${OUT_DIR:-$ROOT/target/bench-server/run-$STAMP-$MODE}
mkdir -p "$OUT_DIR/raw"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gslb-server-bench.XXXXXX")
CSV=$OUT_DIR/results.csv

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  if [[ ${KEEP_WORK:-0} == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

{
  echo "date: $(date -Is)  mode: $MODE"
  echo "host: $(uname -srm), nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "versions: gslb $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?') | gdnsd $(gdnsd -h 2>&1 | awk '/version/{print $3; exit}')" \
       "| knot $(knotd -V 2>/dev/null | awk '{print $NF; exit}')" \
       "| pdns $(pdns_server --version 2>&1 | awk '/PowerDNS Authoritative/{print $7; exit}')" \
       "| dnsperf $(dnsperf -h 2>&1 | awk '/^Version/{print $2; exit}')"
  echo "server cpu: $SERVER_CPU  client cpu: $CLIENT_CPU"
  echo "dnsperf: -l $DURATION -c $CLIENTS -q $OUTSTANDING (warmup ${WARMUP}s, latency log $LATENCY), rounds $ROUNDS"
  echo "kinds: $KINDS   geoip db: $GEOIP_DB"
} | tee "$OUT_DIR/meta.txt" >&2

QDIR=$WORK/queries
python3 "$BENCH_DIR/lib/gen_queries.py" "$QDIR" "$ECS_N" 42 | tee -a "$OUT_DIR/meta.txt" >&2
# The same queries with an OPT record (payload 4096) whose DO bit is clear
# (*-edns, and geo-ecs as generated) or set (*-do): a DNSSEC answer costs
# the difference of the two.
python3 - "$QDIR" <<'EOF'
import struct, sys
qdir = sys.argv[1]
def packets(name):
    data = open(f"{qdir}/{name}", "rb").read()
    at = 0
    while at < len(data):
        (size,) = struct.unpack_from("!H", data, at)
        yield bytearray(data[at + 2:at + 2 + size])
        at += 2 + size
def opt_at(packet):
    at = 12
    while packet[at]:
        at += 1 + packet[at]
    return at + 5  # past the root label, QTYPE and QCLASS
def write(name, source, dnssec_ok):
    with open(f"{qdir}/{name}", "wb") as out:
        for packet in packets(source):
            if packet[11] == 0:  # no OPT yet: add one
                packet[11] = 1
                packet += b"\x00" + struct.pack("!HHIH", 41, 4096, 0, 0)
            flags = opt_at(packet) + 1 + 2 + 2 + 1 + 1  # owner, type, class, ext-rcode, version
            packet[flags] = 0x80 if dnssec_ok else 0
            out.write(struct.pack("!H", len(packet)) + packet)
write("static-edns.bin", "static.bin", False)
write("static-do.bin", "static.bin", True)
write("geo-ecs-do.bin", "geo-ecs.bin", True)
EOF

# ------------------------------------------------------------------ helpers
dnsperf_args() {  # KIND -> DP_ARGS
  case $1 in
    static) DP_ARGS=(-d "$QDIR/static.txt") ;;
    geo) DP_ARGS=(-d "$QDIR/geo.txt") ;;
    geo-ecs) DP_ARGS=(-B -d "$QDIR/geo-ecs.bin") ;;
    static-edns | static-do | geo-ecs-do) DP_ARGS=(-B -d "$QDIR/$1.bin") ;;
    *) log "unknown kind $1"; return 1 ;;
  esac
}

proc_ticks() {  # PID -> "utime stime" (clock ticks, all threads)
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12, $13}'
}

machine_busy() {  # -> % of the whole machine busy over 1 s
  local a b
  a=$(awk '$1=="cpu"{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat)
  sleep 1
  b=$(awk '$1=="cpu"{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," "); dt=y[1]-x[1]; di=y[2]-x[2]; printf "%.0f", ((dt > 0) ? 100*(1-di/dt) : 0)}'
}

# Waits (at most QUIET_WAIT s) for QUIET_SECS consecutive seconds below
# QUIET_MAX % busy: other jobs on a 2-core machine skew every figure.
wait_quiet() {
  local t0=$SECONDS ok=0 busy said=0
  while ((SECONDS - t0 < QUIET_WAIT)); do
    busy=$(machine_busy)
    if ((busy < QUIET_MAX)); then
      ok=$((ok + 1)); ((ok >= QUIET_SECS)) && return 0; continue
    fi
    ok=0
    ((said++ == 0)) && log "    machine ${busy}% busy; waiting up to ${QUIET_WAIT}s for ${QUIET_SECS}s idle"
  done
  log "    machine still busy after ${QUIET_WAIT}s; measuring anyway (see column other %core)"
}

# Summarises one dnsperf output file (with -v latency lines) as key=value.
summarise_dnsperf() {  # FILE
  python3 - "$1" <<'EOF'
import re, sys
lat = []; kv = {}
with open(sys.argv[1], errors="replace") as f:
    for line in f:
        if line.startswith("> "):
            try: lat.append(float(line.rsplit(None, 1)[1]))
            except (ValueError, IndexError): pass
            continue
        for key, pat in (("sent", r"Queries sent:\s+(\d+)"), ("completed", r"Queries completed:\s+(\d+)"),
                         ("lost", r"Queries lost:\s+(\d+)"), ("qps", r"Queries per second:\s+([\d.]+)"),
                         ("avg_ms", r"Average Latency \(s\):\s+([\d.]+)")):
            m = re.search(pat, line)
            if m: kv[key] = float(m.group(1))
        m = re.search(r"Response codes:\s+(.*)", line)
        if m: kv["rcodes"] = m.group(1).replace(",", ";").replace(" ", "")
lat.sort()
def pct(p):
    return lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))] * 1000 if lat else float("nan")
print("sent=%d completed=%d lost=%d qps=%.0f avg_ms=%.3f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f rcodes=%s" % (
    kv.get("sent", 0), kv.get("completed", 0), kv.get("lost", 0), kv.get("qps", 0),
    kv.get("avg_ms", float("nan")) * 1000, pct(50), pct(99), pct(99.9), kv.get("rcodes", "-")))
EOF
}

start_server() {  # NAME SERVER PORT WORKERS CPU|- ; sets SPID
  local name=$1 server=$2 port=$3 workers=$4 cpu=$5
  write_config "$server" "$WORK/$name" "$port" "$workers"
  if [[ $cpu == - ]]; then
    "${CMD[@]}" >"$OUT_DIR/raw/$name-server.log" 2>&1 &
    LAST_PID=$!; BG_PIDS+=("$LAST_PID")
  else
    start_bg "$cpu" "$OUT_DIR/raw/$name-server.log" "${CMD[@]}"
  fi
  SPID=$LAST_PID
  if ! wait_dns "$port" 30; then
    log "$name did not answer static.example.test within 30 s; see $OUT_DIR/raw/$name-server.log"
    return 1
  fi
  [[ $cpu == - ]] || pin_tree "$SPID" "$cpu" >/dev/null
}

# Answers checked before measuring: 8 dig +subnet cases and the first 300
# ECS queries of the load file must get the region the generator expects.
check_server() {  # NAME PORT -> CHECK
  local g e
  g=$(geo_check "$2" "$OUT_DIR/raw/$1-geocheck.txt")
  e=$(python3 "$BENCH_DIR/lib/check_geo.py" "$2" "$QDIR" 300 2>&1 | head -1)
  echo "ecs-mix: $e" >>"$OUT_DIR/raw/$1-geocheck.txt"
  CHECK="dig ${g}; ecs ${e%% *}"
  log "    $1 answers: dig cases $g, first 300 ECS load queries $e"
}

# Signed answers checked before measuring (--dnssec): the static name and a
# geo answer carry an RRSIG when DO is set, and the geo answers are right.
check_signed() {  # NAME PORT
  local static www
  static=$(dig @127.0.0.1 -p "$2" static.example.test A +dnssec +norec +short +time=5 +tries=2 | grep -c '^A 13 ')
  www=$(dig @127.0.0.1 -p "$2" www.example.test A +dnssec +norec +short +time=5 +tries=2 +subnet=214.78.1.0/24 | tr '\n' ' ')
  log "    $1 DO answers: static RRSIGs $static; www for 214.78.1.0/24: ${www:0:60}"
  [[ $static == 1 && $www == *"192.0.2.20 "* && $www == *"A 13 "* ]] || log "    WARNING: $1 does not answer signed as expected"
  check_server "$1" "$2"
}

echo "round,server,kind,qps,avg_ms,p50_ms,p99_ms,p999_ms,sent,completed,lost,rcodes,user_us_per_q,sys_us_per_q,server_pct_core,other_pct_core,attempts,check" >"$CSV"

measure() {  # NAME KIND PID PORT ROUND DNSPERF_CPU|- [extra dnsperf args...]
  local name=$1 kind=$2 pid=$3 port=$4 round=$5 dcpu=$6; shift 6
  dnsperf_args "$kind" || return 1
  local common=(-s 127.0.0.1 -p "$port" -c "$CLIENTS" -q "$OUTSTANDING" -t 2 -O suppress=timeouts,unexpected "$@")
  local pin=(taskset -c "$dcpu")
  [[ $dcpu == - ]] && pin=()
  local raw=$WORK/dnsperf-$name-$kind-$round.txt
  local verbose=()
  [[ $LATENCY == 1 ]] && verbose=(-v)
  local t0 t1 attempt foreign
  for ((attempt = 1; attempt <= RETRIES + 1; attempt++)); do
    wait_quiet
    ((WARMUP > 0)) && "${pin[@]}" dnsperf "${common[@]}" "${DP_ARGS[@]}" -l "$WARMUP" >/dev/null 2>&1
    python3 "$BENCH_DIR/lib/cpuwatch.py" $$ $((DURATION + 15)) "$WORK/cpuwatch.txt" &
    local wpid=$!
    t0=$(proc_ticks "$pid")
    "${pin[@]}" dnsperf "${common[@]}" "${DP_ARGS[@]}" "${verbose[@]}" -l "$DURATION" >"$raw" 2>&1
    t1=$(proc_ticks "$pid")
    kill -TERM "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null
    foreign=$(sed -n 's/^foreign=\([0-9.]*\).*/\1/p' "$WORK/cpuwatch.txt" 2>/dev/null)
    foreign=${foreign:-0}
    awk -v f="$foreign" -v m="$FOREIGN_MAX" 'BEGIN{exit !(f > m)}' || break
    ((attempt <= RETRIES)) && log "    $name $kind: other processes used ${foreign}% of a core; measuring again"
  done
  ((attempt > RETRIES + 1)) && attempt=$((RETRIES + 1))
  local s
  s=$(summarise_dnsperf "$raw")
  grep -v '^> ' "$raw" >"$OUT_DIR/raw/dnsperf-$name-$kind-$round.txt"
  rm -f "$raw"
  local -A v=()
  local kvp
  for kvp in $s; do v[${kvp%%=*}]=${kvp#*=}; done
  local user sys busy
  read -r user sys busy < <(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v n="${v[completed]}" -v d="$DURATION" 'BEGIN{
    split(a,x," "); split(b,y," "); u=y[1]-x[1]; s=y[2]-x[2];
    if (n > 0) printf "%.2f %.2f %.0f\n", u*1e6/hz/n, s*1e6/hz/n, 100*(u+s)/hz/d; else print "nan nan nan" }')
  echo "$round,$name,$kind,${v[qps]},${v[avg_ms]},${v[p50_ms]},${v[p99_ms]},${v[p999_ms]},${v[sent]},${v[completed]},${v[lost]},${v[rcodes]},$user,$sys,$busy,$foreign,$attempt,$CHECK" >>"$CSV"
  log "    r$round $name $kind: qps=${v[qps]} avg=${v[avg_ms]}ms p99=${v[p99_ms]}ms lost=${v[lost]} cpu/q user=${user}us sys=${sys}us server=${busy}%core other=${foreign}%"
}

report() {  # BASELINE_NAME -> markdown table on stdout
  python3 - "$CSV" "$1" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
base = sys.argv[2]
def f(x):
    try: return float(x)
    except (TypeError, ValueError): return float("nan")
order, data = [], {}
for r in rows:
    k = (r["server"], r["kind"])
    if k not in data: data[k] = []; order.append(k)
    data[k].append(r)
def agg(k):
    rs = data[k]; m = lambda c: statistics.mean(f(r[c]) for r in rs)
    return {"qps": m("qps"), "avg": m("avg_ms"), "p99": m("p99_ms"), "p999": m("p999_ms"),
            "lost": sum(int(f(r["lost"])) for r in rs), "sent": sum(int(f(r["sent"])) for r in rs),
            "user": m("user_us_per_q"), "sys": m("sys_us_per_q"), "other": max(f(r["other_pct_core"]) for r in rs),
            "busy": m("server_pct_core"),
            "qps_runs": "/".join("%.0f" % f(r["qps"]) for r in rs), "check": rs[0]["check"], "n": len(rs)}
hdr = ["server", "kind", "rounds", "QPS mean", "QPS per round", "mean lat ms", "p99 ms", "p99.9 ms", "lost/sent",
       "CPU us/q user", "CPU us/q sys", "CPU us/q total", "server %core", "other %core (max)", "answers check"]
print("| " + " | ".join(hdr) + " |"); print("|" + "---|" * len(hdr))
A = {k: agg(k) for k in order}
for k in order:
    a = A[k]
    print("| " + " | ".join([k[0], k[1], str(a["n"]), "%.0f" % a["qps"], a["qps_runs"], "%.3f" % a["avg"], "%.3f" % a["p99"],
          "%.3f" % a["p999"], "%d/%d" % (a["lost"], a["sent"]), "%.2f" % a["user"], "%.2f" % a["sys"],
          "%.2f" % (a["user"] + a["sys"]), "%.0f" % a["busy"], "%.0f" % a["other"], a["check"]]) + " |")
ratios = [(k, (base, k[1])) for k in order if k[0] != base and (base, k[1]) in A]
if ratios:
    print()
    hdr = ["ratio", "kind", "QPS", "p99", "CPU/q user", "CPU/q total"]
    print("| " + " | ".join(hdr) + " |"); print("|" + "---|" * len(hdr))
    r = lambda x, y: "%.2f" % (x / y) if y else "-"
    for k, b in ratios:
        a, z = A[k], A[b]
        print("| " + " | ".join(["%s/%s" % (k[0], base), k[1], r(a["qps"], z["qps"]), r(a["p99"], z["p99"]),
              r(a["user"], z["user"]), r(a["user"] + a["sys"], z["user"] + z["sys"])]) + " |")
    print("\nQPS ratio > 1: faster than %s; p99 and CPU ratios < 1: better than %s." % (base, base))
EOF
}

# ------------------------------------------------------------------ modes
run_compare() {
  local -A pid=() port=([gslb]=$GSLB_PORT [gdnsd]=$GDNSD_PORT) check=()
  local s round kind
  for s in gslb gdnsd; do
    log "=== starting $s on udp 127.0.0.1:${port[$s]}, 1 UDP worker, pinned to CPU $SERVER_CPU"
    start_server "$s" "$s" "${port[$s]}" 1 "$SERVER_CPU" || exit 1
    pid[$s]=$SPID
    check_server "$s" "${port[$s]}"; check[$s]=$CHECK
  done
  for ((round = 1; round <= ROUNDS; round++)); do
    for kind in $KINDS; do
      for s in gslb gdnsd; do
        is_alive "${pid[$s]}" || { log "$s died; see $OUT_DIR/raw/$s-server.log"; exit 1; }
        pin_tree "${pid[$s]}" "$SERVER_CPU" >/dev/null
        CHECK=${check[$s]}
        measure "$s" "$kind" "${pid[$s]}" "${port[$s]}" "$round" "$CLIENT_CPU"
      done
    done
  done
  report gdnsd | tee "$OUT_DIR/table.md"
}

run_scaling() {
  local w s name pinned round kind
  for w in $SCALE_WORKERS; do
    for s in gslb gdnsd; do
      name=$s-w$w
      pinned=$SERVER_CPU
      local dcpu=$CLIENT_CPU extra=()
      if ((w > 1)); then pinned=-; dcpu=-; extra=(-T 2); fi
      local port=$GSLB_PORT
      [[ $s == gdnsd ]] && port=$GDNSD_PORT
      log "=== $name: $w UDP worker(s), server CPU ${pinned/-/any}, dnsperf CPU ${dcpu/-/any}"
      start_server "$name" "$s" "$port" "$w" "$pinned" || exit 1
      local spid=$SPID
      check_server "$name" "$port"
      for ((round = 1; round <= ROUNDS; round++)); do
        for kind in $KINDS; do
          measure "$name" "$kind" "$spid" "$port" "$round" "$dcpu" "${extra[@]}"
        done
      done
      stop_pid "$spid"
    done
  done
  report gdnsd-w1 | tee "$OUT_DIR/table.md"
}

# Total instructions in a callgrind dump (the "summary:" or "totals:" line).
callgrind_total() { awk '/^(summary|totals):/{print $2; exit}' "$1"; }

# Where the instructions go, per answered query (benches/support/callgrind_profile.py
# reads the dump itself: self cost by function, by source file so that
# inlined code shows where it was written, and self + calls made).
summarise_profile() {  # DUMP QUERIES
  echo "# $(basename "$1"): $(callgrind_total "$1") instructions, $2 answered queries"
  python3 "$ROOT/benches/support/callgrind_profile.py" "$1" "$2" "$CG_TOP" "$ROOT"
}

run_callgrind() {
  echo "server,kind,instructions,completed,lost,instructions_per_query,dump,queries_per_wakeup" >"$OUT_DIR/callgrind.csv"
  local s port kind before after dump total sum
  for s in $CG_SERVERS; do
    port=$(port_of_server "$s")
    write_config "$s" "$WORK/$s-cg" "$port" 1 || { log "cannot configure $s"; exit 1; }
    log "=== $s under callgrind (pinned to CPU $SERVER_CPU)"
    start_bg "$SERVER_CPU" "$OUT_DIR/raw/$s-callgrind.log" valgrind --tool=callgrind ${CG_ARGS:-} \
      --callgrind-out-file="$OUT_DIR/callgrind.$s.out" "${CMD[@]}"
    local spid=$LAST_PID
    if ! wait_dns "$port" 120; then log "$s did not start under valgrind; see $OUT_DIR/raw/$s-callgrind.log"; exit 1; fi
    pin_tree "$spid" "$SERVER_CPU" >/dev/null
    [[ $MODE == dnssec ]] && check_signed "$s" "$port"
    for kind in $CG_KINDS; do
      dnsperf_args "$kind" || continue
      local common=(-s 127.0.0.1 -p "$port" -c "$CG_CLIENTS" -q "$CG_OUTSTANDING" -t 5 -O suppress=timeouts,unexpected
        ${CG_RATE:+-Q "$CG_RATE"})
      taskset -c "$CLIENT_CPU" dnsperf "${common[@]}" "${DP_ARGS[@]}" -l "$CG_WARMUP" >/dev/null 2>&1
      callgrind_control --zero "$spid" >/dev/null 2>&1 || log "    callgrind_control --zero failed"
      local raw=$OUT_DIR/raw/callgrind-dnsperf-$s-$kind.txt
      before=$(ls "$OUT_DIR"/callgrind.$s.out* 2>/dev/null | wc -l)
      taskset -c "$CLIENT_CPU" dnsperf "${common[@]}" "${DP_ARGS[@]}" -l "$CG_DURATION" >"$raw" 2>&1
      callgrind_control --dump="$kind" "$spid" >/dev/null 2>&1 || log "    callgrind_control --dump failed"
      dump=
      for ((i = 0; i < 100; i++)); do   # the dump is written asynchronously
        after=$(ls "$OUT_DIR"/callgrind.$s.out* 2>/dev/null | wc -l)
        ((after > before)) && { dump=$(ls -t "$OUT_DIR"/callgrind.$s.out* | head -1); break; }
        sleep 0.1
      done
      [[ -n $dump ]] || { log "    no callgrind dump for $s $kind"; continue; }
      sleep 0.5
      mv "$dump" "$OUT_DIR/callgrind.$s.$kind.out"
      dump=$OUT_DIR/callgrind.$s.$kind.out
      total=$(callgrind_total "$dump")
      sum=$(summarise_dnsperf "$raw")
      local completed lost
      completed=$(sed -n 's/.*completed=\([0-9]*\).*/\1/p' <<<"$sum")
      lost=$(sed -n 's/.*lost=\([0-9]*\).*/\1/p' <<<"$sum")
      summarise_profile "$dump" "$completed" >"$OUT_DIR/profile-$s-$kind.txt"
      local per_wakeup
      per_wakeup=$(sed -n 's/^## wakeups: .*queries per wakeup: \([0-9.]*\)$/\1/p' "$OUT_DIR/profile-$s-$kind.txt")
      echo "$s,$kind,$total,$completed,$lost,$(awk -v t="$total" -v n="$completed" 'BEGIN{printf "%.0f", (n > 0 ? t / n : 0)}'),$(basename "$dump"),${per_wakeup:-0}" >>"$OUT_DIR/callgrind.csv"
      log "    $s $kind: $total instructions / $completed answers = $(awk -v t="$total" -v n="$completed" 'BEGIN{printf "%.0f", (n > 0 ? t / n : 0)}') per query (lost $lost, ${per_wakeup:-?} queries per wakeup)"
    done
    stop_pid "$spid"
  done
  [[ $MODE == dnssec ]] && { dnssec_table; return; }
  python3 - "$OUT_DIR/callgrind.csv" <<'EOF' | tee "$OUT_DIR/table.md"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {(r["server"], r["kind"]): r for r in rows}
servers = list(dict.fromkeys(r["server"] for r in rows))
head = ["kind"] + ["%s instr/query" % s for s in servers]
ratios = [(a, b) for a, b in (("gslb", "gdnsd"), ("gslb", "gslb-base")) if a in servers and b in servers]
head += ["%s/%s" % r for r in ratios] + ["%s answers (lost), per wakeup" % s for s in servers]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
ipq = lambda s, kind: float(by[(s, kind)]["instructions_per_query"]) if (s, kind) in by else 0
for kind in dict.fromkeys(r["kind"] for r in rows):
    cells = [kind] + ["%.0f" % ipq(s, kind) if (s, kind) in by else "-" for s in servers]
    cells += ["%.2f" % (ipq(a, kind) / ipq(b, kind)) if ipq(a, kind) and ipq(b, kind) else "-" for a, b in ratios]
    cells += ["%s (%s), %s" % (by[(s, kind)]["completed"], by[(s, kind)]["lost"], by[(s, kind)]["queries_per_wakeup"]) if (s, kind) in by else "-" for s in servers]
    print("| " + " | ".join(cells) + " |")
EOF
  log "profiles: $OUT_DIR/profile-*.txt (callgrind_annotate; dumps callgrind.SERVER.KIND.out)"
}

# Per server: instructions per query without and with the DO bit, and the ratio.
dnssec_table() {
  python3 - "$OUT_DIR/callgrind.csv" <<'EOF' | tee "$OUT_DIR/table.md"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {(r["server"], r["kind"]): float(r["instructions_per_query"]) for r in rows}
lost = {(r["server"], r["kind"]): "%s (%s)" % (r["completed"], r["lost"]) for r in rows}
servers = list(dict.fromkeys(r["server"] for r in rows))
print("| server | query | DO=0 instr/query | DO=1 instr/query | DO=1 / DO=0 | answers DO=0 / DO=1 (lost) |")
print("|---|---|---|---|---|---|")
for server in servers:
    for label, plain, signed in (("static", "static-edns", "static-do"), ("geo + ECS", "geo-ecs", "geo-ecs-do")):
        a, b = by.get((server, plain)), by.get((server, signed))
        print("| %s | %s | %s | %s | %s | %s / %s |" % (server, label, "%.0f" % a if a else "-", "%.0f" % b if b else "-",
              "%.2f" % (b / a) if a and b else "-", lost.get((server, plain), "-"), lost.get((server, signed), "-")))
EOF
}

case $MODE in
  compare) run_compare ;;
  scaling) run_scaling ;;
  callgrind | dnssec) run_callgrind ;;
esac
log "results: $OUT_DIR"
