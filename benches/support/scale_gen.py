#!/usr/bin/env python3
"""Generates the inputs of benches/scale.sh: a city-sized GeoIP source CSV
(for `gslb geoip build`), and a big configuration (zone with many static
records, many services over many pools) with dnsperf query files.

Everything is deterministic for a given --seed. Nothing here touches the
network; the generated files go wherever the caller says (benches/scale.sh
uses target/bench-scale/).

    scale_gen.py geoip OUT.csv [--v4 3700000] [--v6 300000] [--seed 1]
    scale_gen.py config OUTDIR --geoip PATH.mmdb [--records 100000]
                 [--services 10000] [--pools 1000] [--queries 200000] [--seed 1]
    scale_gen.py small OUTDIR [--queries 200000]    # same query kinds, config/gslb.toml

The GeoIP model (see benches/README.md, "Scale"): every /8 of the usable IPv4
space belongs to a registry region; it is cut into allocations (/12../20), most
to a country of that region, some to any country, some left without data;
each allocation is cut into networks (/16../32, mostly /22../24) whose cities
(subdivision and coordinates) differ from their neighbour's, and ~2% of the
networks sit in a country elsewhere (anycast, cloud, VPN). So adjacent
networks nearly always differ, as in a real city database, while a
continent-level map merges them into far fewer ranges.
"""

import argparse
import bisect
import ipaddress
import math
import os
import random
import struct
import sys

# (country, continent, latitude, longitude, weight): weight ~ share of
# address space within its registry region.
COUNTRIES = [
    # North America (ARIN; MX and Central America via LACNIC below)
    ("US", "NA", 39.8, -98.6, 60), ("CA", "NA", 56.1, -106.3, 8), ("PR", "NA", 18.2, -66.5, 1),
    ("JM", "NA", 18.1, -77.3, 1), ("BS", "NA", 25.0, -77.4, 1),
    # Europe and Middle East (RIPE)
    ("DE", "EU", 51.2, 10.5, 12), ("GB", "EU", 55.4, -3.4, 12), ("FR", "EU", 46.2, 2.2, 10),
    ("IT", "EU", 41.9, 12.6, 6), ("NL", "EU", 52.1, 5.3, 6), ("ES", "EU", 40.5, -3.7, 5),
    ("SE", "EU", 60.1, 18.6, 3), ("PL", "EU", 51.9, 19.1, 4), ("RU", "EU", 61.5, 105.3, 8),
    ("UA", "EU", 48.4, 31.2, 2), ("CH", "EU", 46.8, 8.2, 2), ("NO", "EU", 60.5, 8.5, 2),
    ("FI", "EU", 61.9, 25.7, 1), ("DK", "EU", 56.3, 9.5, 1), ("BE", "EU", 50.5, 4.5, 2),
    ("AT", "EU", 47.5, 14.6, 1), ("CZ", "EU", 49.8, 15.5, 1), ("RO", "EU", 45.9, 25.0, 1),
    ("PT", "EU", 39.4, -8.2, 1), ("IE", "EU", 53.4, -8.2, 1), ("GR", "EU", 39.1, 21.8, 1),
    ("TR", "AS", 39.0, 35.2, 3), ("IL", "AS", 31.0, 34.9, 1), ("SA", "AS", 23.9, 45.1, 1),
    ("AE", "AS", 23.4, 53.8, 1), ("IR", "AS", 32.4, 53.7, 2), ("KZ", "AS", 48.0, 66.9, 1),
    # Asia-Pacific (APNIC)
    ("CN", "AS", 35.9, 104.2, 30), ("JP", "AS", 36.2, 138.3, 18), ("KR", "AS", 35.9, 127.8, 10),
    ("IN", "AS", 20.6, 79.0, 8), ("AU", "OC", -25.3, 133.8, 6), ("TW", "AS", 23.7, 121.0, 4),
    ("ID", "AS", -0.8, 113.9, 3), ("VN", "AS", 14.1, 108.3, 2), ("TH", "AS", 15.9, 101.0, 2),
    ("HK", "AS", 22.3, 114.2, 2), ("SG", "AS", 1.35, 103.8, 2), ("MY", "AS", 4.2, 101.98, 1),
    ("PH", "AS", 12.9, 121.8, 1), ("NZ", "OC", -40.9, 174.9, 1), ("PK", "AS", 30.4, 69.3, 1),
    ("BD", "AS", 23.7, 90.4, 1),
    # Latin America (LACNIC)
    ("BR", "SA", -14.2, -51.9, 12), ("MX", "NA", 23.6, -102.6, 6), ("AR", "SA", -38.4, -63.6, 3),
    ("CO", "SA", 4.6, -74.3, 2), ("CL", "SA", -35.7, -71.5, 2), ("PE", "SA", -9.2, -75.0, 1),
    ("VE", "SA", 6.4, -66.6, 1), ("EC", "SA", -1.8, -78.2, 1), ("CR", "NA", 9.7, -83.8, 1),
    ("UY", "SA", -32.5, -55.8, 1),
    # Africa (AFRINIC)
    ("ZA", "AF", -30.6, 22.9, 6), ("EG", "AF", 26.8, 30.8, 3), ("NG", "AF", 9.1, 8.7, 2),
    ("KE", "AF", -0.02, 37.9, 1), ("MA", "AF", 31.8, -7.1, 2), ("DZ", "AF", 28.0, 1.7, 1),
    ("TN", "AF", 33.9, 9.5, 1), ("GH", "AF", 7.9, -1.0, 1), ("TZ", "AF", -6.4, 34.9, 1),
]

# Registry region of each country (index into REGISTRIES) and the share of
# /8 blocks each registry holds.
REGISTRY_OF = {}
for code, *_ in COUNTRIES[:5]:
    REGISTRY_OF[code] = 0
for code, *_ in COUNTRIES[5:32]:
    REGISTRY_OF[code] = 1
for code, *_ in COUNTRIES[32:49]:
    REGISTRY_OF[code] = 2
for code, *_ in COUNTRIES[49:59]:
    REGISTRY_OF[code] = 3
for code, *_ in COUNTRIES[59:]:
    REGISTRY_OF[code] = 4
REGISTRY_SHARE = [0.42, 0.22, 0.24, 0.06, 0.06]  # ARIN RIPE APNIC LACNIC AFRINIC

# /8 blocks never in a GeoIP database: this network, private, loopback, and
# multicast and above (224/3).
RESERVED_V4_8 = {0, 10, 127}
RESERVED_V4 = [ipaddress.ip_network(n) for n in (
    "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24")]

FOREIGN_NETWORK = 0.02     # network in a country outside its allocation's
FOREIGN_ALLOCATION = 0.10  # allocation to a country outside the /8's registry
EMPTY_ALLOCATION = 0.08    # allocation without data (unallocated, bogons)


class Cities:
    """Interned locations: each country has cities (subdivision, coordinates)."""

    def __init__(self, rng, cities_per_weight):
        self.by_country = {}
        for code, continent, lat, lon, weight in COUNTRIES:
            count = max(4, int(weight * cities_per_weight))
            subdivisions = max(2, int(math.sqrt(count)))
            rows = []
            for i in range(count):
                sub = f"S{rng.randrange(subdivisions):02d}"
                clat = max(-89.9, min(89.9, lat + rng.uniform(-6, 6)))
                clon = (lon + rng.uniform(-9, 9) + 180) % 360 - 180
                rows.append(f"{code},{continent},{sub},{clat:.4f},{clon:.4f}")
            self.by_country[code] = rows

    def pick(self, rng, country, avoid):
        rows = self.by_country[country]
        row = rows[rng.randrange(len(rows))]
        while row == avoid:
            row = rows[rng.randrange(len(rows))]
        return row

    def count(self):
        return sum(len(rows) for rows in self.by_country.values())


def weighted_picker(rng, items, weights):
    cumulative, total = [], 0.0
    for w in weights:
        total += w
        cumulative.append(total)

    def pick():
        return items[bisect.bisect_right(cumulative, rng.random() * total)]

    return pick


def size_distribution(mean_size, max_log):
    """Weights for network sizes 2^s (s = 0..max_log) around /24, tuned by
    bisection on the tail ratio so the mean size is `mean_size`."""

    def weights(ratio):
        w = []
        for s in range(max_log + 1):
            if s < 8:
                w.append(0.05 * 0.6 ** (8 - s))  # /25../32: a few
            else:
                w.append(ratio ** (s - 8))
        return w

    def mean(ratio):
        w = weights(ratio)
        return sum(wi * 2 ** s for s, wi in enumerate(w)) / sum(w)

    lo, hi = 0.01, 0.95
    for _ in range(60):
        mid = (lo + hi) / 2
        if mean(mid) < mean_size:
            lo = mid
        else:
            hi = mid
    return list(range(max_log + 1)), weights(lo)


def v4_text(addr):
    return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"


def aligned_log(addr, width):
    """log2 of the largest block `addr` is aligned to."""
    return width if addr == 0 else (addr & -addr).bit_length() - 1


def floor_log(n):
    return n.bit_length() - 1


def write_geoip(args):
    rng = random.Random(args.seed)
    cities = Cities(rng, args.cities_per_weight)
    codes = [c[0] for c in COUNTRIES]
    any_country = weighted_picker(rng, codes, [c[4] for c in COUNTRIES])
    by_registry = []
    for reg in range(len(REGISTRY_SHARE)):
        members = [c for c in COUNTRIES if REGISTRY_OF[c[0]] == reg]
        by_registry.append(weighted_picker(rng, [c[0] for c in members], [c[4] for c in members]))
    registry = weighted_picker(rng, list(range(len(REGISTRY_SHARE))), REGISTRY_SHARE)

    blocks = [b for b in range(1, 224) if b not in RESERVED_V4_8]
    usable = len(blocks) * (1 << 24) - sum(n.num_addresses for n in RESERVED_V4)
    with_data = usable * (1 - EMPTY_ALLOCATION)
    sizes, weights = size_distribution(with_data / args.v4, 16)
    net_size = weighted_picker(rng, sizes, weights)
    alloc_size = weighted_picker(rng, [20, 19, 18, 17, 16, 15, 14, 13, 12],
                                 [3, 3, 4, 4, 5, 3, 2, 1, 1])
    reserved = [(int(n.network_address), int(n.broadcast_address) + 1) for n in RESERVED_V4]

    # Alignment splits networks (a /26 leaves the next ones unaligned), so
    # the drawn sizes are shifted up or down to keep the count on target:
    # after each stretch, compare networks written with space passed.
    written, passed, shift = 0, 0, 0
    with open(args.out, "w", buffering=1 << 20) as out:
        out.write("# Generated by benches/support/scale_gen.py (not real data).\n")
        out.write("network,country,continent,subdivision,latitude,longitude\n")
        for block in blocks:
            goal = args.v4 * passed / usable
            if written > goal * 1.02 and shift < 6:
                shift += 1
            elif written < goal * 0.98 and shift > -4:
                shift -= 1
            passed += 1 << 24
            home = registry()
            cursor, block_end = block << 24, (block + 1) << 24
            while cursor < block_end:
                log = min(32 - alloc_size(), aligned_log(cursor, 32), floor_log(block_end - cursor))
                alloc_end = cursor + (1 << log)
                if any(lo < alloc_end and cursor < hi for lo, hi in reserved) or \
                        rng.random() < EMPTY_ALLOCATION:
                    cursor = alloc_end
                    continue
                country = any_country() if rng.random() < FOREIGN_ALLOCATION else by_registry[home]()
                previous = None
                while cursor < alloc_end:
                    s = min(max(net_size() + shift, 0), 16, aligned_log(cursor, 32),
                            floor_log(alloc_end - cursor))
                    if rng.random() < FOREIGN_NETWORK:
                        row = cities.pick(rng, any_country(), previous)
                    else:
                        row = cities.pick(rng, country, previous)
                    out.write(f"{v4_text(cursor)}/{32 - s},{row}\n")
                    previous = row
                    written += 1
                    cursor += 1 << s
        # IPv6: sequential networks (/32../48) in each registry's /12.
        v6_roots = [(0x2600, 0), (0x2a00, 1), (0x2400, 2), (0x2800, 3), (0x2c00, 4)]
        per_root = args.v6 // len(v6_roots)
        v6_sizes = weighted_picker(rng, [80, 84, 88, 92, 96], [6, 3, 2, 1, 1])
        for root, reg in v6_roots:
            cursor = root << 112
            previous = None
            for i in range(per_root):
                if i % 64 == 0:
                    country = by_registry[reg]()
                s = min(v6_sizes(), aligned_log(cursor, 128))
                row = cities.pick(rng, country, previous)
                out.write(f"{ipaddress.IPv6Address(cursor)}/{128 - s},{row}\n")
                previous = row
                cursor += 1 << s
                written += 1
    print(f"wrote {args.out}: {written} networks, {cities.count()} cities", file=sys.stderr)


# ---------------------------------------------------------------------------
# Zone, configuration, queries
# ---------------------------------------------------------------------------

ORIGIN = "scale.test"
CLUSTER = 4  # pools per cluster: eu, na, ap, sa
# Distinct override sets among the cluster maps, and distinct pool sets used
# by `nearest` services: each distinct routing is one compiled region table
# (services with equal routing share it). A nearest table over city
# coordinates is large (full pool order per city), see benches/README.md.
MAP_VARIANTS = 10
NEAREST_SETS = 8
CLUSTER_REGIONS = [("eu", 50.1, 8.7), ("na", 39.0, -77.5), ("ap", 35.7, 139.7), ("sa", -23.5, -46.6)]


def pool_name(i):
    return f"p{i:04d}"


def pool_endpoints(i, rng):
    """Addresses of pool i: IPv4 in 100.64.0.0/10 (never contacted), an
    IPv6 one in 2001:db8::/32 for every other pool."""
    count = 2 + i % 3
    eps = []
    for j in range(count):
        eps.append((f"100.{64 + (i >> 8)}.{i & 255}.{j + 1}", 1 + rng.randrange(5)))
    if i % 2 == 0:
        eps.append((f"2001:db8:{i:x}::{count + 1}", 1))
    return eps


def write_config(args):
    rng = random.Random(args.seed)
    os.makedirs(args.outdir, exist_ok=True)
    zone_file = os.path.join(args.outdir, f"{ORIGIN}.zone")
    records = []  # (name, type) for the query file
    with open(zone_file, "w", buffering=1 << 20) as z:
        z.write(f"$ORIGIN {ORIGIN}.\n$TTL 3600\n")
        z.write(f"@ IN SOA ns1.{ORIGIN}. hostmaster.{ORIGIN}. 1 7200 900 1209600 300\n")
        z.write(f"@ IN NS ns1.{ORIGIN}.\n@ IN NS ns2.{ORIGIN}.\n")
        z.write("ns1 IN A 192.0.2.53\nns2 IN A 198.51.100.53\n")
        kinds = ["A"] * 40 + ["AAAA"] * 20 + ["TXT"] * 15 + ["MX"] * 10 + ["CNAME"] * 15
        for i in range(args.records):
            name = f"h{i}.g{i % 500}"
            kind = kinds[i % 100]
            if kind == "A":
                rdata = f"198.18.{(i >> 8) & 255}.{i & 255}"
            elif kind == "AAAA":
                rdata = f"2001:db8:{(i >> 16) & 0xffff:x}:{i & 0xffff:x}::1"
            elif kind == "TXT":
                rdata = f'"record {i} v=scale1"'
            elif kind == "MX":
                rdata = f"10 mx{i % 50}.{ORIGIN}."
            else:
                # Points at an earlier A record (i - 1 - i % 100 is an A: 0..39 of its hundred).
                target = i - i % 100 + (i % 40)
                rdata = f"h{target}.g{target % 500}.{ORIGIN}."
            z.write(f"{name} IN {kind} {rdata}\n")
            records.append((f"{name}.{ORIGIN}", kind))

    pools = []
    for i in range(args.pools):
        region, lat, lon = CLUSTER_REGIONS[i % CLUSTER]
        pools.append((pool_name(i), region, lat + rng.uniform(-8, 8), lon + rng.uniform(-8, 8)))
    clusters = args.pools // CLUSTER

    def cluster_pools(c):
        return [pools[c * CLUSTER + k][0] for k in range(CLUSTER)]

    lines = [
        "# Generated by benches/support/scale_gen.py: a big configuration for",
        "# benches/scale.sh. Not an example to copy.",
        "[server]",
        'listen = ["127.0.0.1:5300"]',
        'api = "127.0.0.1:0"',
        "udp_workers = 1",
        "",
        "[[zone]]",
        f'origin = "{ORIGIN}"',
        f'file = "{ORIGIN}.zone"',
        "",
        "[geoip]",
        f'database = "{os.path.abspath(args.geoip)}"',
        "",
    ]
    for name, region, lat, lon in pools:
        i = int(name[1:])
        eps = ", ".join(f'{{ address = "{a}", weight = {w} }}' for a, w in pool_endpoints(i, rng))
        lines += [f"[pools.{name}]", f"coordinates = [{lat:.3f}, {lon:.3f}]", f"endpoints = [{eps}]", ""]

    # One shared map per cluster: continents to the cluster's regions, and
    # one of MAP_VARIANTS sets of country and subdivision overrides (so the
    # maps compile to MAP_VARIANTS distinct region tables).
    overrides = [("RU", "eu", "ap"), ("MX", "na", "sa"), ("TR", "eu", "ap"), ("AU", "ap", "na"),
                 ("ZA", "eu", "sa"), ("IN", "ap", "eu"), ("CA", "na", "eu"), ("AR", "sa", "na")]
    for c in range(clusters):
        pool_of = dict(zip(("eu", "na", "ap", "sa"), cluster_pools(c)))
        eu, na, ap, sa = cluster_pools(c)
        variant = c % MAP_VARIANTS
        chosen = [o for k, o in enumerate(overrides) if (variant >> (k % 4)) & 1 or k == variant % 8]
        country = ", ".join(f'{code} = ["{pool_of[a]}", "{pool_of[b]}"]' for code, a, b in chosen)
        lines += [
            f"[maps.c{c:03d}]",
            f'continent = {{ EU = ["{eu}", "{na}"], AF = ["{eu}", "{na}"], NA = ["{na}", "{eu}"], '
            f'SA = ["{sa}", "{na}"], AS = ["{ap}", "{na}"], OC = ["{ap}", "{na}"] }}',
            f"country = {{ {country} }}",
            f'subdivision = {{ "US-S{variant:02d}" = ["{na}", "{sa}"] }}',
            f'default = ["{na}"]',
            "",
        ]

    services = []  # (name, kind)
    for i in range(args.services):
        name = f"s{i}.svc.{ORIGIN}"
        c = i % clusters
        roll = i % 20
        if roll < 11:  # geo over a shared map
            lines += [f'[services."{name}"]', 'policy = "geo"', f'map = "c{c:03d}"', ""]
            kind = "geo-map"
        elif roll < 14:  # geo with an inline map of random pools
            a, b, d = rng.sample(range(args.pools), 3)
            lines += [
                f'[services."{name}"]', 'policy = "geo"',
                f'[services."{name}".geo]',
                f'continent = {{ EU = ["{pool_name(a)}", "{pool_name(b)}"], NA = ["{pool_name(b)}", "{pool_name(a)}"], '
                f'AS = ["{pool_name(d)}", "{pool_name(b)}"] }}',
                f'default = ["{pool_name(b)}"]', "",
            ]
            kind = "geo-inline"
        elif roll < 17:  # nearest over one of a few clusters, the map as fallback
            n = c % NEAREST_SETS
            lines += [f'[services."{name}"]', 'policy = "nearest"', f'map = "c{n:03d}"', ""]
            kind = "nearest"
        elif roll < 18:  # geo, sticky, two records
            lines += [f'[services."{name}"]', 'policy = "geo"', f'map = "c{c:03d}"',
                      'selection = "sticky"', ""]
            kind = "geo-sticky"
        else:  # failover with weighted picks
            p = ", ".join(f'"{n}"' for n in cluster_pools(c)[:3])
            lines += [f'[services."{name}"]', 'policy = "failover"', f"pools = [{p}]",
                      'selection = "weighted"', "ttl = 60", ""]
            kind = "failover"
        services.append((name, kind))
    config_file = os.path.join(args.outdir, "scale.toml")
    with open(config_file, "w") as f:
        f.write("\n".join(lines))

    # dnsperf query files: text (records, services) and wire format with ECS.
    with open(os.path.join(args.outdir, "queries-records.txt"), "w") as f:
        for _ in range(args.queries):
            name, kind = records[rng.randrange(len(records))]
            f.write(f"{name} {kind}\n")
    with open(os.path.join(args.outdir, "queries-services.txt"), "w") as f:
        for _ in range(args.queries):
            f.write(f"{services[rng.randrange(len(services))][0]} A\n")
    with open(os.path.join(args.outdir, "queries-services-ecs.bin"), "wb") as f:
        for n in range(args.queries):
            name = services[rng.randrange(len(services))][0]
            f.write(wire_query(n & 0xFFFF, name, random_subnet24(rng)))
    print(f"wrote {config_file}: {args.records} records, {args.services} services, "
          f"{args.pools} pools, {clusters} maps", file=sys.stderr)


def write_small_queries(args):
    """The same three query files for the shipped config/gslb.toml: its
    static names, and www.example.test without and with ECS."""
    rng = random.Random(args.seed)
    os.makedirs(args.outdir, exist_ok=True)
    static = [("example.test", "SOA"), ("example.test", "NS"), ("example.test", "MX"),
              ("example.test", "TXT"), ("ns1.example.test", "A"), ("ns1.example.test", "AAAA"),
              ("ns2.example.test", "A"), ("mail.example.test", "A"), ("api.example.test", "A"),
              ("api.example.test", "AAAA"), ("docs.example.test", "CNAME"),
              ("x.apps.example.test", "A")]
    with open(os.path.join(args.outdir, "queries-records.txt"), "w") as f:
        for _ in range(args.queries):
            name, kind = static[rng.randrange(len(static))]
            f.write(f"{name} {kind}\n")
    with open(os.path.join(args.outdir, "queries-services.txt"), "w") as f:
        f.write("www.example.test A\n" * args.queries)
    with open(os.path.join(args.outdir, "queries-services-ecs.bin"), "wb") as f:
        for n in range(args.queries):
            f.write(wire_query(n & 0xFFFF, "www.example.test", random_subnet24(rng)))


def random_subnet24(rng):
    """A random /24 of the public IPv4 space (as a 24-bit number)."""
    while True:
        subnet = rng.randrange(1 << 24)
        if (subnet >> 16) not in RESERVED_V4_8 and (subnet >> 16) < 224:
            return subnet


def wire_query(qid, name, subnet24):
    """A DNS query for `name` A with EDNS0 and ECS subnet24/24, prefixed by
    its 2-byte length (dnsperf -B, TCP stream format)."""
    header = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1)
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    question = qname + struct.pack("!HH", 1, 1)
    ecs = struct.pack("!HBB", 1, 24, 0) + subnet24.to_bytes(3, "big")
    option = struct.pack("!HH", 8, len(ecs)) + ecs
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(option)) + option
    message = header + question + opt
    return struct.pack("!H", len(message)) + message


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("geoip", help="write a city-sized GeoIP CSV for `gslb geoip build`")
    g.add_argument("out")
    g.add_argument("--v4", type=int, default=3_700_000, help="IPv4 networks (approximate)")
    g.add_argument("--v6", type=int, default=300_000, help="IPv6 networks")
    g.add_argument("--cities-per-weight", type=float, default=400.0,
                   help="cities per unit of country weight (~100k cities by default)")
    g.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("config", help="write zone, scale.toml and query files into OUTDIR")
    c.add_argument("outdir")
    c.add_argument("--geoip", required=True, help="mmdb the configuration uses")
    c.add_argument("--records", type=int, default=100_000)
    c.add_argument("--services", type=int, default=10_000)
    c.add_argument("--pools", type=int, default=1_000)
    c.add_argument("--queries", type=int, default=200_000, help="lines per dnsperf query file")
    c.add_argument("--seed", type=int, default=1)
    q = sub.add_parser("small", help="write the same query files for config/gslb.toml into OUTDIR")
    q.add_argument("outdir")
    q.add_argument("--queries", type=int, default=200_000)
    q.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.command == "geoip":
        write_geoip(args)
    elif args.command == "small":
        write_small_queries(args)
    else:
        if args.pools < CLUSTER or args.pools % CLUSTER:
            parser.error(f"--pools must be a multiple of {CLUSTER}")
        write_config(args)


if __name__ == "__main__":
    main()
