#!/usr/bin/env python3
"""Regenerates the seed corpora in fuzz/corpus/ (run from the repository root).

packet: real queries as dig sends them (captured on a loopback socket that
answers each with its own bytes and QR set, so dig returns at once), plus
hand-made malformed ones. config, zone, latency: the project's own files.
Needs dig (dnsutils). Writes only under fuzz/corpus/.
"""
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import threading

ROOT = os.getcwd()
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def save(target, data, name=None):
    if isinstance(data, str):
        data = data.encode()
    name = name or hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def capture_dig_queries(commands):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    captured = []

    def serve():
        while True:
            data, peer = sock.recvfrom(65535)
            if data == b"stop":
                return
            captured.append(data)
            reply = bytearray(data)
            if len(reply) >= 12:
                reply[2] |= 0x80
            sock.sendto(bytes(reply), peer)

    thread = threading.Thread(target=serve)
    thread.start()
    for args in commands:
        subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=1"] + args,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"stop", ("127.0.0.1", port))
    thread.join()
    return captured


def name(text):
    out = b""
    for label in text.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(qname, qtype=1, flags=0, qd=1, an=0, ns=0, ar=0, body=b"", qid=0x1234):
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar) + name(qname) + struct.pack(">HH", qtype, 1) + body


def opt(payload=1232, version=0, options=b""):
    return b"\0" + struct.pack(">HHBBHH", 41, payload, 0, version, 0, len(options)) + options


def ecs(family, source, scope, address):
    return struct.pack(">HHHBB", 8, 4 + len(address), family, source, scope) + address


def packets():
    dig_commands = []
    services = ["www.example.test", "near.example.test", "lat.example.test",
                "fo.example.test", "cdn.example.test"]
    subnets = ["81.2.69.160/24", "216.160.83.0/24", "2001:218::/32", "89.160.20.0/24",
               "10.1.0.0/16", "0.0.0.0/0", "1.128.0.0/11", "2001:67c:2e8::/48"]
    for service in services:
        for qtype in ["A", "AAAA"]:
            dig_commands.append([service, qtype])
        for subnet in subnets:
            dig_commands.append([service, "A", "+subnet=" + subnet])
        dig_commands.append([service, "AAAA", "+subnet=2001:218::/32"])
        dig_commands.append([service, "CNAME", "+subnet=81.2.69.0/24"])
        dig_commands.append([service, "ANY"])
        dig_commands.append([service, "MX"])
    for qname, qtype in [("example.test", "SOA"), ("example.test", "NS"), ("example.test", "MX"),
                         ("example.test", "TXT"), ("example.test", "ANY"), ("example.test", "AXFR"),
                         ("docs.example.test", "A"), ("x.apps.example.test", "A"),
                         ("host.lab.example.test", "A"), ("nope.example.test", "A"),
                         ("core.test", "NS"), ("big.core.test", "TXT"), ("medium.core.test", "TXT"),
                         ("alias.core.test", "A"), ("loop1.core.test", "A"),
                         ("dangling.core.test", "A"), ("a.wild.core.test", "TXT"),
                         ("ent.core.test", "A"), ("x.deleg.core.test", "A"),
                         ("www.sub.core.test", "A"), ("x.big.edge.test", "A"),
                         ("edge.test", "SOA"), ("example.com", "A"), (".", "NS"),
                         ("WwW.ExAmPlE.TeSt", "A")]:
        dig_commands.append([qname, qtype])
    extra = [["big.core.test", "TXT", "+bufsize=512"], ["big.core.test", "TXT", "+bufsize=4096"],
             ["big.core.test", "TXT", "+noedns"], ["x.big.edge.test", "A", "+bufsize=600"],
             ["www.example.test", "A", "+nsid"], ["www.example.test", "A", "+cookie"],
             ["www.example.test", "A", "+edns=1"], ["www.example.test", "A", "+ednsopt=65001:abcd"],
             ["www.example.test", "A", "+dnssec", "+subnet=81.2.69.0/24"],
             ["www.example.test", "A", "+opcode=notify"], ["www.example.test", "A", "+opcode=update"],
             ["www.example.test", "A", "+header-only"], ["www.example.test", "A", "+class=CH"],
             ["www.example.test", "A", "+class=ANY"], ["www.example.test", "TYPE65", "+cd"],
             ["www.example.test", "A", "+ednsflags=0x80", "+padding=64"]]
    for packet in capture_dig_queries(dig_commands + extra):
        save("packet", packet)
    ecs_query = query("www.example.test", ar=1, body=opt(options=ecs(1, 24, 0, bytes([81, 2, 69]))))
    save("packet", ecs_query, "ecs-v4-24")
    # Malformed: truncated ECS query, QR=1, qdcount 0 and 2, label > 63,
    # name > 255, pointer loop in an additional record, bad ECS, many
    # additional records, unknown EDNS option, EDNS version 1.
    save("packet", ecs_query[:len(ecs_query) - 3], "ecs-truncated")
    save("packet", query("www.example.test", flags=0x8000), "qr-set")
    save("packet", query("www.example.test", qd=0), "qdcount-0")
    save("packet", query("www.example.test", qd=2) + name("example.test") + b"\0\1\0\1", "qdcount-2")
    save("packet", struct.pack(">HHHHHH", 7, 0, 1, 0, 0, 0) + b"\x40" + b"a" * 64 + b"\0\0\1\0\1", "label-64")
    long_name = ".".join(["a" * 63] * 4) + ".example.test"
    save("packet", query(long_name), "name-over-255")
    loop = b"\xc0\x00" + struct.pack(">HHIH", 1, 1, 0, 0)
    save("packet", query("www.example.test", an=1, body=b"\xc0\x22" * 1) + loop, "pointer-answer")
    save("packet", query("www.example.test", ar=1) + b"\xc0\x0c\xc0" + struct.pack(">HHIH", 1, 1, 0, 0), "pointer-additional")
    save("packet", query("www.example.test", ar=1, body=opt(options=ecs(3, 24, 0, b"\1\2\3"))), "ecs-bad-family")
    save("packet", query("www.example.test", ar=1, body=opt(options=ecs(1, 24, 8, b"\1\2\3"))), "ecs-nonzero-scope")
    save("packet", query("www.example.test", ar=1, body=opt(options=ecs(1, 23, 0, b"\1\2\3"))), "ecs-stray-bits")
    save("packet", query("www.example.test", ar=1, body=opt(options=ecs(2, 56, 0, bytes(7)))), "ecs-v6-56")
    records = b"".join(b"\0" + struct.pack(">HHIH", 16, 1, 0, 1) + b"\0" for _ in range(40))
    save("packet", query("www.example.test", ar=41, body=records + opt()), "many-additional")
    save("packet", query("www.example.test", ar=1, body=opt(options=struct.pack(">HH", 65001, 2) + b"ab")), "unknown-option")
    save("packet", query("www.example.test", ar=1, body=opt(version=1)), "edns-version-1")
    save("packet", query("www.example.test", ar=2, body=opt() + opt()), "two-opt")
    save("packet", query("www.example.test", ar=1, body=opt(payload=100)), "payload-100")
    save("packet", b"\x12\x34\x00", "short")


def files():
    def copy(target, path, rename=None):
        with open(os.path.join(ROOT, path), "rb") as f:
            data = f.read()
        if rename:
            data = data.replace(rename[0].encode(), rename[1].encode())
        save(target, data, path.replace("/", "_") + (".renamed" if rename else ""))

    for path in ["config/gslb.toml", "fuzz/fixtures/packet.toml"] + [
            "config/examples/" + f for f in sorted(os.listdir(os.path.join(ROOT, "config/examples")))
            if f.endswith(".toml")]:
        copy("config", path)
    save("config", """
[[zone]]
origin = "example.test"
file = "z"
[checks.web]
kind = "http"
interval = "200ms"
timeout = 0.15
fall = 2
rise = 2
path = "/health"
expect_status = [200, "300-399", "2xx"]
body_contains = "ok"
[checks.web.json]
status_field = "status"
down_when = { cpu = 95.0 }
[health]
wait_for_first_round = true
[pools.eu]
check = "web"
min_healthy = 0.5
endpoints = [{ address = "127.0.0.11", check_port = 8080 }, { cname = "x.example.net", check_url = "http://127.0.0.1/" }]
""", "checks")
    for path in ["zones/example.test.zone", "zones/lab.example.test.zone"]:
        copy("zone", path)
    for path, origin in [("tests/fixtures/core.test.zone", "core.test"),
                         ("tests/fixtures/edge.test.zone", "edge.test"),
                         ("tests/fixtures/sub.core.test.zone", "sub.core.test")]:
        copy("zone", path)
        copy("zone", path, (origin, "example.test"))
    save("zone", "$TTL 1h30m\n@ IN SOA ns h 1 2 3 4 5\n IN NS ns\nns IN A 192.0.2.1\n* IN TXT \"a;b\" ( \"c\" )\n", "ttl-units")
    copy("latency", "config/examples/latency.csv")
    save("latency", "10.0.0.0/8, eu, 12.5\n2001:db8::/32,ap,40 # comment\n\n10.1.0.0/16,us,x\nbad\n", "mixed")
    save("latency", "prefix,region,ms\n0.0.0.0/0,eu,0\n::/0,us,1e3\n", "defaults")


if __name__ == "__main__":
    for target in ["packet", "config", "zone", "latency"]:
        shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)
        os.makedirs(os.path.join(CORPUS, target))
    packets()
    files()
    for target in ["packet", "config", "zone", "latency"]:
        print(target, len(os.listdir(os.path.join(CORPUS, target))))
