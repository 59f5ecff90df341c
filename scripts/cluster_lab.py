"""A gslb cluster on loopback, for the cluster drill and benchmarks.

Starts a single-node etcd (temporary data dir, free ports), TCP backends
that can be killed (connections refused) and revived on the same port, and
gslb members; queries them over UDP; reads their admin API. Everything it
starts is stopped by `Lab.close()` (also on exit and on SIGTERM/SIGINT).

Used by scripts/cluster-chaos.sh (scripts/cluster_chaos.py) and
benches/cluster.py. Standard library only; loopback only.
"""

import atexit
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TOKEN = "cluster-lab-token"
ZONE = "example.test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(deadline_secs, check, interval=0.05):
    end = time.monotonic() + deadline_secs
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(interval)
    return False


class Etcd:
    """A single-node etcd on loopback; `stop` keeps its data for `start`."""

    def __init__(self, work):
        self.dir = os.path.join(work, "etcd")
        self.client_port, self.peer_port = free_port(), free_port()
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.client_port}"

    def start(self):
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = open(os.path.join(os.path.dirname(self.dir), "etcd.log"), "ab")
        self.proc = subprocess.Popen(
            ["etcd", "--name", "lab", "--data-dir", self.dir,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"lab={peer}", "--initial-cluster-state", "new"],
            stdout=subprocess.DEVNULL, stderr=log)
        if not wait_until(30, self.healthy):
            raise RuntimeError("etcd did not become healthy (see etcd.log)")

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return b'"health":"true"' in r.read()
        except OSError:
            return False

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    @property
    def running(self):
        return self.proc is not None

    def metrics(self):
        """etcd's own counters, summed over labels (e.g. etcd_mvcc_put_total)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            return parse_prometheus(r.read().decode())

    def rss_kib(self):
        return rss_kib(self.proc.pid) if self.proc else 0

    def count(self, prefix):
        """How many keys are under `prefix` (read from etcd, so counting
        costs the members nothing)."""
        import base64
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        body = json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                           "range_end": base64.b64encode(end.encode()).decode(),
                           "count_only": True}).encode()
        request = urllib.request.Request(self.url + "/v3/kv/range", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(json.loads(r.read()).get("count", 0))


class Backends:
    """TCP listeners on 127.0.0.1 that accept and close: a health check
    connects; a killed backend refuses connections until revived."""

    def __init__(self):
        self.sockets = {}

    def add(self):
        port = free_port()
        self.revive(port)
        return port

    def revive(self, port):
        if port in self.sockets:
            return
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1024)
        s.settimeout(0.2)
        self.sockets[port] = s
        threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        while True:
            try:
                conn, _ = s.accept()
                conn.close()
            except socket.timeout:
                continue
            except OSError:
                return

    def kill(self, port):
        s = self.sockets.pop(port, None)
        if s:
            s.close()

    def alive(self, port):
        return port in self.sockets

    def close(self):
        for port in list(self.sockets):
            self.kill(port)


class Member:
    """One `gslb serve` with its own directory, config and fixed ports."""

    def __init__(self, gslb, work, name, config_body, cluster=None, wrapper=()):
        self.gslb, self.name, self.wrapper = gslb, name, list(wrapper)
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.dns_port, self.api_port = free_port(), free_port()
        server = (f'[server]\nlisten = ["127.0.0.1:{self.dns_port}"]\n'
                  f'api = "127.0.0.1:{self.api_port}"\napi_token = "{TOKEN}"\n'
                  f'state_dir = "state"\nudp_workers = 1\n\n')
        cluster_text = ""
        if cluster:
            cluster_text = "\n[cluster]\n" + "".join(
                f"{k} = {json.dumps(v)}\n" for k, v in {"name": name, **cluster}.items())
        self.config = os.path.join(self.dir, "gslb.toml")
        with open(self.config, "w") as f:
            f.write(server + config_body + cluster_text)
        self.proc = None
        self.started_at = None
        self.start()

    def start(self):
        log = open(os.path.join(self.dir, "gslb.log"), "ab")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "gslb=info"), NO_COLOR="1")
        self.proc = subprocess.Popen(self.wrapper + [self.gslb, "serve", "-c", self.config],
                                     stdout=subprocess.PIPE, stderr=log, env=env, text=True)
        for line in self.proc.stdout:
            if line.startswith("listening on"):
                break
        else:
            raise RuntimeError(f"{self.name} exited before listening (see {self.dir}/gslb.log)")
        threading.Thread(target=lambda out: [None for _ in out], args=(self.proc.stdout,),
                         daemon=True).start()
        self.started_at = time.monotonic()

    def kill9(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self):
        """SIGTERM (valgrind writes its profile then)."""
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def dns(self):
        return ("127.0.0.1", self.dns_port)

    def query(self, name, timeout=1.0):
        return dns_query(self.dns, name, timeout)

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}{path}", timeout=10) as r:
            return r.read().decode()

    def status(self):
        return json.loads(self.get("/status"))

    def metrics(self):
        return parse_prometheus(self.get("/metrics"))

    def post(self, path, body):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}", data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())

    def rss_kib(self):
        return rss_kib(self.proc.pid) if self.proc else 0


class Lab:
    """Owns everything started for one run; `close` stops it all."""

    def __init__(self, gslb, label="lab", keep=False):
        self.gslb = gslb
        self.work = tempfile.mkdtemp(prefix=f"gslb-{label}-")
        self.keep = keep
        self.etcd = None
        self.backends = Backends()
        self.members = []
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: sys.exit(130))

    def start_etcd(self):
        self.etcd = Etcd(self.work)
        return self.etcd

    def member(self, name, config_body, cluster=None, wrapper=()):
        m = Member(self.gslb, self.work, name, config_body, cluster, wrapper)
        self.members.append(m)
        return m

    def close(self):
        for m in self.members:
            m.kill9()
        self.members = []
        if self.etcd:
            self.etcd.stop()
            self.etcd = None
        self.backends.close()
        if self.work and not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None


def cluster_settings(etcd, prefix, quorum="majority", member_ttl="3s"):
    return {"etcd": [etcd.url], "prefix": prefix, "down_quorum": quorum,
            "member_ttl": member_ttl}


def zone_file(work):
    path = os.path.join(work, f"{ZONE}.zone")
    with open(path, "w") as f:
        f.write(f"$ORIGIN {ZONE}.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n"
                "@ IN NS ns1\nns1 IN A 192.0.2.53\n")
    return path


def config_body(work, pools, services, interval="1s", timeout="500ms", rise=1, fall=2):
    """`pools`: {name: [(address, check_port), ...]}; `services`:
    {name: [pool, ...]} (failover, in that order)."""
    lines = [f'[[zone]]\norigin = "{ZONE}"\nfile = "{zone_file(work)}"\n',
             # Every endpoint names its own check_port; the check's port is required.
             f'[checks.tcp]\nkind = "tcp"\nport = 80\ninterval = "{interval}"\n'
             f'timeout = "{timeout}"\nrise = {rise}\nfall = {fall}\n']
    for pool, endpoints in pools.items():
        eps = ",\n  ".join(f'{{ address = "{a}", check_address = "127.0.0.1", check_port = {p} }}'
                           for a, p in endpoints)
        lines.append(f'[pools.{pool}]\ncheck = "tcp"\nendpoints = [\n  {eps},\n]\n')
    for name, order in services.items():
        lines.append(f'[services."{name}"]\npolicy = "failover"\npools = {json.dumps(order)}\n'
                     "ttl = 5\n")
    return "\n".join(lines)


# ---------------------------------------------------------------- DNS

def dns_query(server, name, timeout=1.0):
    """A records answered for `name` (sorted), or None when no reply came."""
    qid = random.randrange(65536)
    packet = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        packet += bytes([len(label)]) + label.encode()
    packet += b"\x00" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, server)
        end = time.monotonic() + timeout
        while True:
            try:
                reply, _ = s.recvfrom(4096)
            except (socket.timeout, ConnectionRefusedError):
                return None
            if len(reply) >= 12 and struct.unpack(">H", reply[:2])[0] == qid:
                return parse_a_records(reply)
            if time.monotonic() > end:
                return None


def skip_name(msg, pos):
    while pos < len(msg):
        length = msg[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length
    return pos


def parse_a_records(msg):
    _, _, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    pos = 12
    for _ in range(qd):
        pos = skip_name(msg, pos) + 4
    out = []
    for _ in range(an):
        pos = skip_name(msg, pos)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            out.append(socket.inet_ntoa(msg[pos:pos + 4]))
        pos += rdlen
    return sorted(out)


# ---------------------------------------------------------------- misc

def parse_prometheus(text):
    """Metric name -> value, summed over label sets."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            key, value = line.rsplit(" ", 1)
            name = key.split("{", 1)[0]
            values[name] = values.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return values


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
