#!/usr/bin/env python3
"""Cluster benchmarks (issue 19), all on loopback with a real etcd:

  benches/cluster.py convergence [--trials 20]
      3 members, majority: time from a backend's death (connections refused)
      to every member answering without it, and from a drain call on one
      member to every member applying it; median and max over the trials.
  benches/cluster.py load [--members 3] [--endpoints 1000] [--steady 60] [--outage 60]
      etcd writes per member per minute in steady state and during (and
      after) a region outage, keys written when etcd is restarted (away
      2 s), members' and etcd's memory, a standalone instance's memory
      with the same configuration.
  benches/cluster.py callgrind [--seconds 20]
      instructions per answered query on the UDP worker thread, standalone
      vs a member of a 3-member cluster (valgrind --tool=callgrind, dnsperf).

GSLB=path (default target/release/gslb, built when missing). Every load
and wait is bounded; everything started is stopped. Results are printed
and appended to target/bench-cluster/results.txt. Not run by CI.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import cluster_lab as lab  # noqa: E402

WWW = "www.example.test"
EU, US = "192.0.2.10", "198.51.100.10"


def gslb_binary():
    path = os.environ.get("GSLB", os.path.join(ROOT, "target/release/gslb"))
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    return path


def report(lines):
    out = os.path.join(ROOT, "target/bench-cluster")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.txt"), "a") as f:
        f.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv[1:])}\n")
        for line in lines:
            print(line)
            f.write(line + "\n")


def wait_members(members, count, deadline=60):
    ok = lab.wait_until(deadline, lambda: all(
        len(m.status()["cluster"]["members"]) == count for m in members), 0.2)
    if not ok:
        raise RuntimeError(f"members never saw {count} members")


def poll_until_all(members, want, deadline=30, start=None):
    """Times (s since `start`, default now) at which each member first
    answered `want` and kept answering it until all did; None if the
    deadline passed."""
    start = time.monotonic() if start is None else start
    since = [None] * len(members)
    while time.monotonic() - start < deadline:
        for i, m in enumerate(members):
            answer = m.query(WWW, 0.5)
            if answer == [want]:
                if since[i] is None:
                    since[i] = time.monotonic() - start
            else:
                since[i] = None
        if all(s is not None for s in since):
            return since
        time.sleep(0.005)
    return None


# ---------------------------------------------------------------- convergence

def convergence(args):
    gslb = gslb_binary()
    with_lab = lab.Lab(gslb, "bench-convergence")
    etcd = with_lab.start_etcd()
    eu_port, us_port = with_lab.backends.add(), with_lab.backends.add()
    body = lab.config_body(with_lab.work, {"eu": [(EU, eu_port)], "us": [(US, us_port)]},
                           {WWW: ["eu", "us"]}, interval=args.interval, timeout="500ms",
                           rise=args.rise, fall=args.fall)
    settings = lab.cluster_settings(etcd, "/gslb/bench", "majority", "3s")
    members = [with_lab.member(f"ns{i}", body, settings) for i in (1, 2, 3)]
    wait_members(members, 3)
    if poll_until_all(members, EU) is None:
        raise RuntimeError("members never answered eu")
    death, death_first, recovery, drain, undrain = [], [], [], [], []
    for trial in range(args.trials):
        # A random phase against the probe interval.
        time.sleep(random.uniform(0.2, 1.2))
        start = time.monotonic()
        with_lab.backends.kill(eu_port)
        moved = poll_until_all(members, US, start=start)
        if moved is None:
            raise RuntimeError(f"trial {trial}: members did not all move off the dead backend")
        death.append(max(moved))
        death_first.append(min(moved))
        start = time.monotonic()
        with_lab.backends.revive(eu_port)
        back = poll_until_all(members, EU, start=start)
        if back is None:
            raise RuntimeError(f"trial {trial}: members did not all come back")
        recovery.append(max(back))
        # Drain through a random member's API.
        time.sleep(random.uniform(0.1, 0.5))
        member = random.choice(members)
        start = time.monotonic()
        member.post("/override", {"pool": "eu", "state": "drain"})
        moved = poll_until_all(members, US, start=start)
        if moved is None:
            raise RuntimeError(f"trial {trial}: drain did not reach every member")
        drain.append(max(moved))
        start = time.monotonic()
        random.choice(members).post("/override", {"pool": "eu", "state": "none"})
        back = poll_until_all(members, EU, start=start)
        if back is None:
            raise RuntimeError(f"trial {trial}: undrain did not reach every member")
        undrain.append(max(back))
        print(f"trial {trial + 1}: death {death[-1]:.2f}s (first member {death_first[-1]:.2f}s), "
              f"recovery {recovery[-1]:.2f}s, drain {drain[-1] * 1000:.0f}ms, "
              f"undrain {undrain[-1] * 1000:.0f}ms", flush=True)
    with_lab.close()

    def fmt(name, values, ms=False):
        scale, unit = (1000, "ms") if ms else (1, "s")
        return (f"| {name} | {statistics.median(values) * scale:.{0 if ms else 2}f} {unit} | "
                f"{max(values) * scale:.{0 if ms else 2}f} {unit} |")
    report([
        f"convergence, 3 members, down_quorum majority, tcp check interval {args.interval} "
        f"fall {args.fall} rise {args.rise}, {args.trials} trials:",
        "| from | median | max |", "|---|---|---|",
        fmt("backend death -> every member answers without it", death),
        fmt("backend death -> first member answers without it", death_first),
        fmt("backend back -> every member answers it again", recovery),
        fmt("drain call on one member -> every member applies it", drain, ms=True),
        fmt("undrain call -> every member applies it", undrain, ms=True),
    ])


# ---------------------------------------------------------------- store load

def load_layout(work, backends, endpoints, regions=4, ports_per_region=10):
    """`endpoints` endpoints in `regions` pools; each region's endpoints are
    probed on its `ports_per_region` backend ports (killing those is the
    region's outage). One failover service per region."""
    ports = {r: [backends.add() for _ in range(ports_per_region)] for r in range(regions)}
    per_region = endpoints // regions
    pools = {f"r{r}": [(f"10.{r}.{i // 200}.{i % 200 + 1}", ports[r][i % ports_per_region])
                       for i in range(per_region)] for r in range(regions)}
    services = {f"s{r}.example.test": [f"r{(r + k) % regions}" for k in range(regions)]
                for r in range(regions)}
    return pools, services, ports


def counters(members, etcd):
    m = [x.metrics() for x in members]
    e = etcd.metrics()
    return {
        "writes": [x.get("gslb_cluster_store_writes_total", 0) for x in m],
        "keys": [x.get("gslb_cluster_store_keys_written_total", 0) for x in m],
        "etcd_put": e.get("etcd_mvcc_put_total", 0),
        "etcd_txn": e.get("etcd_mvcc_txn_total", 0),
        "etcd_delete": e.get("etcd_mvcc_delete_total", 0),
    }


def per_minute(before, after, secs):
    def rate(key):
        deltas = [(b - a) * 60 / secs for a, b in zip(before[key], after[key])]
        return statistics.mean(deltas), max(deltas)
    w, k = rate("writes"), rate("keys")
    keys = sum(after[x] - before[x] for x in ("etcd_put", "etcd_delete"))
    txns = after["etcd_txn"] - before["etcd_txn"]
    return (f"{w[0]:.1f} (max {w[1]:.1f}) | {k[0]:.1f} (max {k[1]:.1f}) | "
            f"{keys * 60 / secs:.0f} / {txns * 60 / secs:.0f}")


def store_load(args):
    gslb = gslb_binary()
    with_lab = lab.Lab(gslb, "bench-load", keep=args.keep)
    etcd = with_lab.start_etcd()
    pools, services, ports = load_layout(with_lab.work, with_lab.backends, args.endpoints)
    body = lab.config_body(with_lab.work, pools, services, interval=args.interval,
                           timeout="1s", rise=1, fall=2)
    # A standalone instance with the same configuration, for memory.
    standalone = with_lab.member("standalone", body)
    settings = lab.cluster_settings(etcd, "/gslb/load", "majority", "5s")
    members = [with_lab.member(f"ns{i}", body, settings) for i in range(1, args.members + 1)]
    # Settled: every member's record and verdicts are in etcd (counted
    # there: /status and /metrics of thousands of endpoints cost the
    # members memory of their own, which is not the cluster's).
    expected = args.endpoints // 4 * 4
    if not lab.wait_until(300, lambda: etcd.count("/gslb/load/members/") == args.members
                          and etcd.count("/gslb/load/verdicts/") == args.members * expected, 1):
        raise RuntimeError("members never published every verdict")
    time.sleep(2 * float(args.interval.rstrip("s")))
    rss = [m.rss_kib() for m in members]
    standalone_rss = standalone.rss_kib()
    etcd_rss = etcd.rss_kib()
    lines = [f"store load: {args.members} members, {expected} endpoints in 4 regions, "
             f"tcp check interval {args.interval} fall 2 rise 1, down_quorum majority, "
             f"member_ttl 5s",
             "| phase | write requests/min per member (mean, max) | keys written/min per "
             "member | etcd, all members: keys put or deleted / transactions per min |",
             "|---|---|---|---|"]
    before = counters(members, etcd)
    time.sleep(args.steady)
    after = counters(members, etcd)
    lines.append(f"| steady, {args.steady} s | {per_minute(before, after, args.steady)} |")
    for port in ports[0]:
        with_lab.backends.kill(port)
    before = after
    time.sleep(args.outage)
    after = counters(members, etcd)
    lines.append(f"| region r0 down ({expected // 4} endpoints), first {args.outage} s | "
                 f"{per_minute(before, after, args.outage)} |")
    for port in ports[0]:
        with_lab.backends.revive(port)
    before = after
    time.sleep(args.outage)
    after = counters(members, etcd)
    lines.append(f"| region r0 back, first {args.outage} s | "
                 f"{per_minute(before, after, args.outage)} |")
    # etcd away for 2 s (less than member_ttl), then back: each member
    # resumes its lease and writes only what differs from what it holds.
    # etcd's own counters restart at 0 with it.
    before = counters(members, etcd)
    etcd.stop()
    time.sleep(2)
    etcd.start()
    if not lab.wait_until(120, lambda: all(
            m.metrics().get("gslb_cluster_store_up", 0) == 1 for m in members), 1):
        raise RuntimeError("members never reconnected to etcd")
    time.sleep(2 * float(args.interval.rstrip("s")))
    after = counters(members, etcd)
    keys = [b - a for a, b in zip(before["keys"], after["keys"])]
    lines.append(f"| etcd restarted (away 2 s), until every member is back + "
                 f"{2 * float(args.interval.rstrip('s')):.0f} s: keys written per member, "
                 f"in all (mean, max) | {statistics.mean(keys):.0f} (max {max(keys):.0f}) | | "
                 f"{after['etcd_put'] + after['etcd_delete']:.0f} keys in all |")
    lines.append(f"memory (VmRSS, settled, before any /status or /metrics call): member mean "
                 f"{statistics.mean(rss) / 1024:.1f} MiB (max {max(rss) / 1024:.1f}), standalone "
                 f"{standalone_rss / 1024:.1f} MiB, etcd {etcd_rss / 1024:.1f} MiB")
    if args.keep:
        lines.append(f"kept: {with_lab.work}")
    with_lab.close()
    report(lines)


# ---------------------------------------------------------------- callgrind

def callgrind(args):
    gslb = gslb_binary()
    results = []
    for mode in ("standalone", "member"):
        with_lab = lab.Lab(gslb, f"bench-cg-{mode}", keep=True)
        eu = [with_lab.backends.add() for _ in range(4)]
        us = with_lab.backends.add()
        pools = {"eu": [(f"192.0.2.{10 + i}", p) for i, p in enumerate(eu)], "us": [(US, us)]}
        body = lab.config_body(with_lab.work, pools, {WWW: ["eu", "us"]}, interval="1s")
        settings = None
        if mode == "member":
            etcd = with_lab.start_etcd()
            settings = lab.cluster_settings(etcd, "/gslb/cg", "majority", "3s")
            for i in (2, 3):
                with_lab.member(f"ns{i}", body, settings)
        out = os.path.join(with_lab.work, "callgrind.out")
        member = with_lab.member("ns1", body, settings, wrapper=[
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            "--toggle-collect=gslb::dns::server::serve_udp*"])
        if settings:
            wait_members(with_lab.members, 3, 120)
        time.sleep(3)
        queries = os.path.join(with_lab.work, "queries.txt")
        with open(queries, "w") as f:
            f.write(f"{WWW} A\n")
        run = subprocess.run(
            ["dnsperf", "-s", "127.0.0.1", "-p", str(member.dns_port), "-d", queries,
             "-l", str(args.seconds), "-c", "2", "-q", "20", "-Q", str(args.rate)],
            capture_output=True, text=True)
        completed = next((int(line.split()[2]) for line in run.stdout.splitlines()
                          if "Queries completed:" in line), 0)
        member.stop()
        total = 0
        for line in open(out):
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
                break
        results.append((mode, total, completed))
        with_lab.keep = False
        with_lab.close()
    lines = [f"callgrind, UDP worker thread (serve_udp), {args.seconds} s of dnsperf at "
             f"{args.rate} q/s, failover service over 4 + 1 tcp-checked endpoints:",
             "| instance | instructions | answered | instructions per answer |", "|---|---|---|---|"]
    per = {}
    for mode, total, completed in results:
        per[mode] = total / max(completed, 1)
        lines.append(f"| {mode} | {total:,} | {completed:,} | {per[mode]:,.0f} |")
    if per.get("standalone"):
        lines.append(f"member vs standalone: {100 * (per['member'] / per['standalone'] - 1):+.2f} %")
    report(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convergence")
    c.add_argument("--trials", type=int, default=20)
    c.add_argument("--interval", default="1s")
    c.add_argument("--fall", type=int, default=2)
    c.add_argument("--rise", type=int, default=1)
    c.set_defaults(run=convergence)
    s = sub.add_parser("load")
    s.add_argument("--members", type=int, default=3)
    s.add_argument("--endpoints", type=int, default=1000)
    s.add_argument("--interval", default="5s")
    s.add_argument("--steady", type=int, default=60)
    s.add_argument("--outage", type=int, default=60)
    s.add_argument("--keep", action="store_true",
                   help="keep the lab directory (members' and etcd's logs) and print it")
    s.set_defaults(run=store_load)
    g = sub.add_parser("callgrind")
    g.add_argument("--seconds", type=int, default=20)
    g.add_argument("--rate", type=int, default=1000, help="dnsperf -Q")
    g.set_defaults(run=callgrind)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
