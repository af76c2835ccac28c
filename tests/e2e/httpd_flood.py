#!/usr/bin/env python3
"""Flood an HTTP server with connections that never finish a request, for the abuse
tests: COUNT connections from each source address, each sending the start of a request
head and then one byte every TRICKLE seconds (which restarts an idle timeout), plus one
idle probe that sends nothing. Bounded in count and time: it stops by itself.

  httpd_flood.py HOST PORT --from 127.0.0.2:2000 [--from ADDR:N ...] --probe 127.0.0.7
                 --duration 20 --trickle 3 --ready FILE --out FILE

FILE given to --ready is written (JSON) once every connection is open and it is known
which ones the server refused (closed at once); --out when the flood ends, with how many
of each address's connections the server closed later and how long after each opened.
"""
import argparse
import json
import os
import resource
import select
import socket
import sys
import time

MAX_CONNS = 6000
MAX_DURATION = 60
HEAD = b"GET /whoami HTTP/1.1\r\nHost: flood\r\nX-Trickle: "


def closed(sock):
    """Has the server closed (or reset) this connection?"""
    try:
        p = select.poll()  # not select(): these descriptors are beyond FD_SETSIZE
        p.register(sock, select.POLLIN)
        if not p.poll(0):
            return False
        return sock.recv(4096) == b""
    except OSError:
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--from", dest="sources", action="append", required=True)
    ap.add_argument("--probe")
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--trickle", type=float, default=3)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    sources = []
    for s in a.sources:
        addr, n = s.rsplit(":", 1)
        sources.append((addr, int(n)))
    total = sum(n for _, n in sources)
    if total > MAX_CONNS or a.duration > MAX_DURATION:
        sys.exit("httpd_flood: at most %d connections for %d s" % (MAX_CONNS, MAX_DURATION))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < total + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, total + 256), hard))

    start = time.monotonic()
    conns = {addr: {} for addr, _ in sources}  # socket: when it was opened
    failed = {addr: 0 for addr, _ in sources}
    for addr, n in sources:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((addr, 0))
                s.settimeout(2)
                s.connect((a.host, a.port))
                s.sendall(HEAD)
                s.setblocking(False)
                conns[addr][s] = time.monotonic()
            except OSError:
                failed[addr] += 1
                s.close()
    probe = None
    if a.probe:
        probe = socket.create_connection((a.host, a.port), timeout=2, source_address=(a.probe, 0))
        probe.setblocking(False)
        probe_opened = time.monotonic()
    time.sleep(1.5)  # the server closes refused connections at once; give it a moment

    def census():
        out = {}
        for addr, held in conns.items():
            for s in [s for s in held if closed(s)]:
                del held[s]
                s.close()
            out[addr] = len(held)
        return out

    first = census()
    report = {
        "opened": {addr: n - failed[addr] for addr, n in sources},
        "connect_failed": failed,
        "accepted": first,
        "seconds_to_open": round(time.monotonic() - start, 1),
    }
    with open(a.ready + ".tmp", "w") as f:
        json.dump(report, f)
    os.rename(a.ready + ".tmp", a.ready)

    # From now on each closure is noticed within 0.2 s, with the connection's age then.
    poller = select.poll()
    owner = {}
    for addr, held in conns.items():
        for s in held:
            poller.register(s, select.POLLIN)
            owner[s.fileno()] = (addr, s)
    closed_after = {addr: [] for addr in conns}
    probe_closed_after = None
    nbyte = 0
    while time.monotonic() - start < a.duration:
        deadline = time.monotonic() + a.trickle
        while time.monotonic() < deadline:
            if probe is not None and probe_closed_after is None and closed(probe):
                probe_closed_after = round(time.monotonic() - probe_opened, 1)
            for fd, _ in poller.poll(200):
                addr, s = owner[fd]
                if closed(s):
                    closed_after[addr].append(time.monotonic() - conns[addr].pop(s))
                    poller.unregister(fd)
                    del owner[fd]
                    s.close()
        nbyte += 1
        for held in conns.values():
            for s in held:
                try:
                    s.send(b"a")
                except OSError:
                    pass
    report["alive_at_end"] = census()
    report["closed"] = {addr: len(t) for addr, t in closed_after.items()}
    report["closed_after"] = {
        addr: [round(min(t), 1), round(max(t), 1)] if t else None for addr, t in closed_after.items()
    }
    report["bytes_trickled"] = nbyte
    report["probe_closed_after"] = probe_closed_after
    for held in conns.values():
        for s in held:
            s.close()
    if probe is not None:
        probe.close()
    with open(a.out + ".tmp", "w") as f:
        json.dump(report, f)
    os.rename(a.out + ".tmp", a.out)

if __name__ == "__main__":
    main()
