#!/usr/bin/env bash
# Three gslb members acting as one through a single-node etcd, all on
# loopback. The configuration is published once (`gslb publish`) and every
# member, whose own file holds only [server] and [cluster] with
# config = "etcd", serves it. Then: a drain made on one member takes effect
# on all; a backend that only one member cannot reach stays up under
# down_quorum = "majority"; a change published reaches all three, `gslb
# versions` and `gslb diff` show it, `gslb rollback` undoes it.
# Starts everything it needs (etcd with a temporary data dir, three HTTP
# backends, three members) and stops all of it on exit.
#
# Usage: scripts/cluster-demo.sh [--publish-timing N]
#   (needs etcd, dig, curl, python3: apt-get install etcd-server dnsutils
#   curl python3; the timing also /usr/bin/python3 with dnspython: apt-get
#   install python3-dnspython)
# --publish-timing N then publishes N more changes and prints the time from
# starting `gslb publish` to all three members answering the new version
# (median and max), as in benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
TIMING=0
if [ "${1:-}" = "--publish-timing" ]; then TIMING=${2:?--publish-timing N}; fi

command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 1; }
command -v dig >/dev/null || { echo "dig not found: apt-get install dnsutils" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl not found: apt-get install curl" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found: apt-get install python3" >&2; exit 1; }

# GSLB=path/to/gslb uses that binary instead of building a release one.
if [ -z "${GSLB:-}" ]; then
    cargo build --release --quiet
    GSLB=$PWD/target/release/gslb
fi
WORK=$(mktemp -d /tmp/gslb-cluster-demo.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- etcd -------------------------------------------------------------------
ETCD_PORT=$(free_port); PEER_PORT=$(free_port)
etcd --name demo --data-dir "$WORK/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
    --initial-cluster "demo=http://127.0.0.1:$PEER_PORT" --initial-cluster-state new >"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    curl -s "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"' && break
    sleep 0.1
done
echo "etcd on 127.0.0.1:$ETCD_PORT (data in $WORK/etcd)"

# --- backends: eu, us, ap; "ap" refuses probes from ns3 (127.0.0.13) ----------
backend() { # PORT REFUSED_SOURCE
    python3 - "$1" "$2" <<'EOF' &
import http.server, sys
port, refused = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 503 if self.client_address[0] == refused else 200
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
    PIDS+=($!)
}
EU_PORT=$(free_port); US_PORT=$(free_port); AP_PORT=$(free_port)
backend "$EU_PORT" none; backend "$US_PORT" none; backend "$AP_PORT" 127.0.0.13

# --- the fleet configuration, published once -------------------------------
mkdir -p "$WORK/fleet"
cat >"$WORK/fleet/example.test.zone" <<'EOF'
$ORIGIN example.test.
$TTL 300
@   IN SOA ns1 hostmaster 1 7200 900 1209600 300
@   IN NS  ns1
@   IN NS  ns2
@   IN NS  ns3
ns1 IN A   127.0.0.11
ns2 IN A   127.0.0.12
ns3 IN A   127.0.0.13
EOF
fleet_config() { # WWW_POOLS CANARY_ADDRESS
    cat >"$WORK/fleet/gslb.toml" <<EOF
[[zone]]
origin = "example.test"
file = "example.test.zone"

[checks.web]
kind = "http"
path = "/health"
interval = "500ms"
rise = 1
fall = 2

[pools.eu]
check = "web"
endpoints = [{ address = "192.0.2.10", check_address = "127.0.0.1", check_port = $EU_PORT }]
[pools.us]
check = "web"
endpoints = [{ address = "198.51.100.10", check_address = "127.0.0.1", check_port = $US_PORT }]
[pools.ap]
check = "web"
endpoints = [{ address = "203.0.113.10", check_address = "127.0.0.1", check_port = $AP_PORT }]
[pools.canary]
endpoints = [{ address = "$2" }]

[services."www.example.test"]
policy = "failover"
pools = $1
ttl = 5
[services."ap.example.test"]
policy = "failover"
pools = ["ap", "us"]
ttl = 5
[services."canary.example.test"]
policy = "failover"
pools = ["canary"]
ttl = 5

# Read by gslb publish, versions, diff and rollback: where versions are kept.
[cluster]
name = "ops"
etcd = ["http://127.0.0.1:$ETCD_PORT"]
prefix = "/gslb/demo"
EOF
}
fleet_config '["eu", "us"]' 192.0.2.100
echo "== publish the configuration:  gslb publish -c $WORK/fleet/gslb.toml -m 'first version'"
"$GSLB" publish -c "$WORK/fleet/gslb.toml" -m "first version"

# --- three members: their own files hold only [server] and [cluster] ---------
declare -A DNS API
for i in 1 2 3; do
    DNS[$i]=$(free_port); API[$i]=$(free_port)
    mkdir -p "$WORK/ns$i"
    cat >"$WORK/ns$i/gslb.toml" <<EOF
[server]
listen = ["127.0.0.1:${DNS[$i]}"]
api = "127.0.0.1:${API[$i]}"

[cluster]
name = "ns$i"
etcd = ["http://127.0.0.1:$ETCD_PORT"]
prefix = "/gslb/demo"
config = "etcd"
down_quorum = "majority"
member_ttl = "3s"
probe_source = "127.0.0.1$i"
EOF
    "$GSLB" serve -c "$WORK/ns$i/gslb.toml" >"$WORK/ns$i/out.log" 2>"$WORK/ns$i/gslb.log" &
    PIDS+=($!)
done
for i in 1 2 3; do
    for _ in $(seq 100); do grep -q "^listening on" "$WORK/ns$i/out.log" 2>/dev/null && break; sleep 0.1; done
done
sleep 2

answer() { # MEMBER NAME
    dig @127.0.0.1 -p "${DNS[$1]}" +short +norec +time=1 +tries=1 "$2" | tr '\n' ' ' || true
}
answers() { # NAME
    for i in 1 2 3; do printf '  ns%s: %s\n' "$i" "$(answer "$i" "$1")"; done
}
# Waits (up to 15 s) until every member answers NAME with ADDRESS: a
# publish or an override takes effect in well under a second, more on a
# loaded machine.
wait_answers() { # NAME ADDRESS
    for _ in $(seq 150); do
        local all=1
        for i in 1 2 3; do [ "$(answer "$i" "$1")" = "$2 " ] || all=0; done
        [ "$all" = 1 ] && return 0
        sleep 0.1
    done
    echo "not every member answers $1 with $2 after 15 s:" >&2; answers "$1" >&2; exit 1
}
wait_answers www.example.test 192.0.2.10

echo
echo "== members seen by ns1:"
curl -s "127.0.0.1:${API[1]}/status" | python3 -c 'import json,sys; c=json.load(sys.stdin)["cluster"]; print("  ", [m["name"] for m in c["members"]], "config digests:", c["config_digests"])'
echo "== www.example.test before (eu first):"; answers www.example.test
echo
echo "== drain eu on ns1 only:  $GSLB override -c $WORK/ns1/gslb.toml eu drain"
"$GSLB" override -c "$WORK/ns1/gslb.toml" eu drain
wait_answers www.example.test 198.51.100.10
echo "== www.example.test on every member:"; answers www.example.test
echo "== clear it on ns2:  $GSLB override -c $WORK/ns2/gslb.toml eu none"
"$GSLB" override -c "$WORK/ns2/gslb.toml" eu none
wait_answers www.example.test 192.0.2.10
echo "== www.example.test on every member:"; answers www.example.test
echo
echo "== ap's backend refuses probes from ns3 (127.0.0.13); ns3's own verdict is down:"
curl -s "127.0.0.1:${API[1]}/status" | python3 -c '
import json,sys
s=json.load(sys.stdin)
for p in s["pools"]:
    for e in p["endpoints"]:
        if e["key"].startswith("ap/"):
            print("  ", e["key"], "members:", e["member_verdicts"], "cluster:", e["cluster_verdict"])'
echo "== ap.example.test stays on ap under majority, on every member (ns3 included):"; answers ap.example.test

# --- publishing a change --------------------------------------------------------
echo
echo "== publish a change (www: us first):  gslb publish -c $WORK/fleet/gslb.toml -m 'us first'"
fleet_config '["us", "eu"]' 192.0.2.100
"$GSLB" publish -c "$WORK/fleet/gslb.toml" -m "us first"
wait_answers www.example.test 198.51.100.10
echo "== www.example.test on every member:"; answers www.example.test
echo "== gslb versions -c $WORK/ns1/gslb.toml"
"$GSLB" versions -c "$WORK/ns1/gslb.toml" | sed 's/^/  /'
echo "== gslb diff -c $WORK/ns1/gslb.toml 1 2"
"$GSLB" diff -c "$WORK/ns1/gslb.toml" 1 2 | sed 's/^/  /'
echo "== roll back:  gslb rollback -c $WORK/ns1/gslb.toml 1"
"$GSLB" rollback -c "$WORK/ns1/gslb.toml" 1
wait_answers www.example.test 192.0.2.10
echo "== www.example.test on every member (eu first again):"; answers www.example.test
# The member records follow the swap by a moment.
for _ in $(seq 50); do
    curl -s "127.0.0.1:${API[1]}/status" | python3 -c '
import json,sys
members = json.load(sys.stdin)["cluster"]["members"]
sys.exit(0 if len(members) == 3 and all(m["config_version"] == 3 for m in members) else 1)' && break
    sleep 0.1
done
echo "== members as ns1 sees them:"
curl -s "127.0.0.1:${API[1]}/status" | python3 -c '
import json,sys
for m in json.load(sys.stdin)["cluster"]["members"]:
    print("  ", m["name"], "serves version", m["config_version"], "behind", m["config_behind"])'

# --- timing: publish -> all three members answer the new version ---------------
if [ "$TIMING" -gt 0 ]; then
    echo
    echo "== $TIMING publishes: time from starting gslb publish to all three members answering"
    /usr/bin/python3 - "$GSLB" "$WORK" "$TIMING" "${DNS[1]}" "${DNS[2]}" "${DNS[3]}" <<'PYTHON'
import re, statistics, subprocess, sys, time
import dns.message, dns.query
gslb, work, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
ports = [int(p) for p in sys.argv[4:]]
path = f"{work}/fleet/gslb.toml"

def answer(port):
    query = dns.message.make_query("canary.example.test", "A")
    try:
        reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except Exception:
        return None
    return [r.address for rrset in reply.answer for r in rrset]

totals, publishes = [], []
for i in range(count):
    address = f"192.0.2.{101 + i % 150}"
    text = open(path).read()
    text = re.sub(r'(\[pools\.canary\]\nendpoints = \[\{ address = ")[0-9.]+', r"\g<1>" + address, text)
    open(path, "w").write(text)
    start = time.monotonic()
    subprocess.run([gslb, "publish", "-c", path, "-m", f"canary {address}"],
                   check=True, stdout=subprocess.DEVNULL)
    published = time.monotonic()
    waiting = set(ports)
    while waiting:
        if time.monotonic() - start > 30:
            sys.exit(f"members on ports {sorted(waiting)} did not answer {address} within 30 s")
        waiting = {p for p in waiting if answer(p) != [address]}
        if waiting:
            time.sleep(0.002)
    totals.append(time.monotonic() - start)
    publishes.append(published - start)

def ms(xs):
    return f"median {statistics.median(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"

print(f"  gslb publish itself (validate, bundle, etcd transaction): {ms(publishes)}")
print(f"  publish started -> all three members answer the new version: {ms(totals)} ({count} publishes)")
PYTHON
fi
echo
echo "done; stopping etcd, backends and members"
