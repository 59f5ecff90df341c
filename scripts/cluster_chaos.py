"""The cluster drill behind scripts/cluster-chaos.sh: three members, one
etcd and three backends on loopback; for DURATION seconds, at random, a
member is killed (SIGKILL) and restarted, etcd is killed and restarted, or
a backend is killed and revived, while a bounded query load runs against
every member. Reports:

- lost queries: queries to a running member that got no reply within 1 s
  (queries to a killed member are counted apart: they are expected);
- stale answers: answers naming an endpoint whose backend had been dead
  for longer than the convergence bound (fall x interval + timeout + 1 s);
- disagreement: how long running members gave different answers (sampled
  every 100 ms), in total and the longest stretch.

Exits 1 when any query was lost or any answer was stale. At most one
backend is dead at a time, so a live pool is always there to fail over to.
"""

import argparse
import random
import threading
import time

import cluster_lab as lab

WWW = "www.example.test"
ADDRESSES = {"eu": "192.0.2.10", "us": "198.51.100.10", "ap": "203.0.113.10"}
INTERVAL_S, TIMEOUT_S, FALL = 0.5, 0.25, 2
BOUND_S = FALL * INTERVAL_S + TIMEOUT_S + 1.0


class Drill:
    def __init__(self, gslb, seed):
        self.rng = random.Random(seed)
        self.lab = lab.Lab(gslb, "cluster-chaos")
        self.etcd = self.lab.start_etcd()
        self.ports = {pool: self.lab.backends.add() for pool in ADDRESSES}
        body = lab.config_body(self.lab.work,
                               {pool: [(ADDRESSES[pool], port)] for pool, port in self.ports.items()},
                               {WWW: ["eu", "us", "ap"]}, interval=f"{int(INTERVAL_S * 1000)}ms",
                               timeout=f"{int(TIMEOUT_S * 1000)}ms", rise=1, fall=FALL)
        settings = lab.cluster_settings(self.etcd, "/gslb/chaos", "majority", "2s")
        self.members = [self.lab.member(f"ns{i}", body, settings) for i in (1, 2, 3)]
        self.lock = threading.Lock()
        # address -> monotonic time its backend died (absent: alive)
        self.dead_since = {}
        self.stop = threading.Event()
        self.sent = self.lost = self.to_dead_member = self.stale = 0
        self.stale_examples = []
        self.disagree_s = self.longest_disagree_s = 0.0
        self.actions = []

    def load(self, rate_qps):
        """Round-robin queries over the members at `rate_qps`."""
        period = 1.0 / rate_qps
        i = 0
        while not self.stop.is_set():
            member = self.members[i % len(self.members)]
            i += 1
            running = member.running
            answer = member.query(WWW, 1.0)
            now = time.monotonic()
            with self.lock:
                self.sent += 1
                if answer is None:
                    # A member killed (or restarted) around the query is expected to miss it.
                    if running and member.running and now - member.started_at > 1.0:
                        self.lost += 1
                    else:
                        self.to_dead_member += 1
                    continue
                for address in answer:
                    died = self.dead_since.get(address)
                    if died is not None and now - died > BOUND_S:
                        self.stale += 1
                        if len(self.stale_examples) < 5:
                            self.stale_examples.append(
                                f"{member.name} answered {address} {now - died:.1f} s after its "
                                "backend died")
            time.sleep(period)

    def watch_agreement(self):
        stretch = 0.0
        while not self.stop.is_set():
            answers = {tuple(m.query(WWW, 0.5) or ()) for m in self.members if m.running}
            answers.discard(())
            if len(answers) > 1:
                stretch += 0.1
                self.disagree_s += 0.1
                self.longest_disagree_s = max(self.longest_disagree_s, stretch)
            else:
                stretch = 0.0
            time.sleep(0.1)

    def chaos(self, until):
        while time.monotonic() < until:
            time.sleep(self.rng.uniform(1.0, 3.0))
            action = self.rng.choice(["member", "etcd", "backend"])
            down_for = self.rng.uniform(1.0, 6.0)
            if action == "member":
                member = self.rng.choice(self.members)
                member.kill9()
                self.actions.append(f"kill -9 {member.name} for {down_for:.1f} s")
                time.sleep(down_for)
                member.start()
            elif action == "etcd":
                self.etcd.stop()
                self.actions.append(f"kill -9 etcd for {down_for:.1f} s")
                time.sleep(down_for)
                self.etcd.start()
            else:
                pool = self.rng.choice(list(self.ports))
                with self.lock:
                    self.dead_since[ADDRESSES[pool]] = time.monotonic()
                self.lab.backends.kill(self.ports[pool])
                self.actions.append(f"kill backend {pool} for {down_for:.1f} s")
                time.sleep(down_for)
                self.lab.backends.revive(self.ports[pool])
                with self.lock:
                    self.dead_since.pop(ADDRESSES[pool], None)

    def run(self, duration, rate_qps):
        threads = [threading.Thread(target=self.load, args=(rate_qps,), daemon=True),
                   threading.Thread(target=self.watch_agreement, daemon=True)]
        for t in threads:
            t.start()
        started = time.monotonic()
        self.chaos(started + duration)
        time.sleep(BOUND_S + 1)  # the last action settles
        self.stop.set()
        for t in threads:
            t.join(timeout=5)
        elapsed = time.monotonic() - started
        self.lab.close()
        print(f"cluster chaos: {elapsed:.0f} s, {len(self.actions)} actions "
              f"({', '.join(self.actions)})")
        print(f"queries: {self.sent} sent, {self.lost} lost, {self.to_dead_member} to a killed "
              f"or restarting member (expected)")
        print(f"stale answers (an endpoint dead for more than {BOUND_S:.2f} s): {self.stale}")
        for example in self.stale_examples:
            print(f"  {example}")
        print(f"members disagreeing: {self.disagree_s:.1f} s in total, longest "
              f"{self.longest_disagree_s:.1f} s")
        return 1 if self.lost or self.stale else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("gslb")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--rate", type=float, default=100, help="queries per second, all members")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"seed {seed} (--seed {seed} repeats the same choices)")
    raise SystemExit(Drill(args.gslb, seed).run(args.duration, args.rate))


if __name__ == "__main__":
    main()
