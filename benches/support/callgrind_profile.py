#!/usr/bin/env python3
"""Summarises one callgrind dump per answered query (used by benches/server.sh).

  callgrind_profile.py DUMP QUERIES TOP [REPO_ROOT]

Prints the TOP functions by self cost, the TOP source files by self cost (inlined
code is counted in the file it was written in, e.g. core/src/hash/sip.rs), and
the TOP functions by self cost plus the inclusive cost of the calls they make.
Costs are instructions (Ir) divided by QUERIES. First it prints the wakeups:
the calls that receive a batch of queries (`recvmmsg`, or the direct
`syscall` of gslb's `UdpBatch::receive`), so the queries per wakeup say how
full the batches were.
"""
import re, sys, collections
path, n, top = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
root = sys.argv[4].rstrip("/") + "/" if len(sys.argv) > 4 else None

def short_path(p):
    """gslb's files relative to the repository; std as core/..., crates as name-version/..."""
    if root and p.startswith(root):
        return p[len(root):]
    p = re.sub(r"^/rustc/[0-9a-f]+/library/", "", p)
    p = re.sub(r"^.*/registry/src/[^/]+/", "", p)
    p = re.sub(r"^/rust/deps/", "", p)
    return re.sub(r"^(\./)+", "", p)

names = {"fl": {}, "fn": {}}
def name(kind, value):
    m = re.match(r"\((\d+)\)(?: (.*))?$", value)
    if not m: return value
    table = names["fl" if kind in ("fl", "fi", "fe", "cfi", "cfl") else "fn"]
    if m.group(2) is not None: table[m.group(1)] = m.group(2)
    return table.get(m.group(1), value)
self_fn = collections.Counter(); self_file = collections.Counter(); calls_out = collections.Counter()
fn = fl = cur_file = "?"; in_call = False; cfn = None; total = 0; receives = 0
with open(path, errors="replace") as f:
    for line in f:
        line = line.rstrip("\n")
        if not line: continue
        c = line[0]
        if c.isdigit() or c in "+-*":
            parts = line.split()
            ir = int(parts[-1]) if len(parts) > 1 else 0
            if in_call:
                if cfn != fn: calls_out[fn] += ir
                in_call = False
                continue
            self_fn[fn] += ir; self_file[cur_file] += ir; total += ir
            continue
        key, _, value = line.partition("=")
        if key == "fl": fl = cur_file = name(key, value)
        elif key in ("fi", "fe"): cur_file = name(key, value)
        elif key == "fn": fn = name(key, value); cur_file = fl
        elif key in ("cfi", "cfl"): name(key, value)
        elif key == "cfn": cfn = name(key, value)
        elif key == "calls":
            in_call = True
            count = int(value.split()[0])
            if cfn == "recvmmsg" or (cfn == "syscall" and "UdpBatch::receive" in fn):
                receives += count
print("## wakeups: %d, queries per wakeup: %.2f" % (receives, n / receives if receives else 0))
print("## self cost by function (instructions per query, % of all)")
for k, v in self_fn.most_common(top):
    print("%8.0f %5.1f%%  %s" % (v / n, 100.0 * v / total, k[:160]))
print("## self cost by source file (inlined code counted where it was written)")
for k, v in self_file.most_common(top):
    print("%8.0f %5.1f%%  %s" % (v / n, 100.0 * v / total, short_path(k)))
print("## inclusive cost by function (self + calls made, per query)")
incl = collections.Counter({k: self_fn[k] + calls_out[k] for k in set(self_fn) | set(calls_out)})
for k, v in incl.most_common(top):
    print("%8.0f %5.1f%%  %s" % (v / n, 100.0 * v / total, k[:160]))
