#!/usr/bin/env python3
"""Flood an HTTP server with connections that never finish a request, for the abuse
tests: COUNT connections from each source address, each sending the start of a request
head and then one byte every TRICKLE seconds (which restarts an idle timeout), plus one
idle probe that sends nothing. Bounded in count and time: it stops by itself.

  httpd_flood.py HOST PORT --from 127.0.0.2:2000 [--from ADDR:N ...] --probe 127.0.0.7
                 --duration 20 --trickle 3 --ready FILE --out FILE

FILE given to --ready is written (JSON) once every connection is open and it is known
which ones the server refused (closed at once); --out when the flood ends.
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
    conns = {addr: [] for addr, _ in sources}
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
                conns[addr].append(s)
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
        for addr, lst in conns.items():
            alive = []
            for s in lst:
                if closed(s):
                    s.close()
                else:
                    alive.append(s)
            conns[addr] = alive
            out[addr] = len(alive)
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

    probe_closed_after = None
    nbyte = 0
    while time.monotonic() - start < a.duration:
        deadline = time.monotonic() + a.trickle
        while time.monotonic() < deadline:
            if probe is not None and probe_closed_after is None and closed(probe):
                probe_closed_after = round(time.monotonic() - probe_opened, 1)
            time.sleep(0.2)
        nbyte += 1
        for lst in conns.values():
            for s in lst:
                try:
                    s.send(b"a")
                except OSError:
                    pass
    report["alive_at_end"] = census()
    report["bytes_trickled"] = nbyte
    report["probe_closed_after"] = probe_closed_after
    for lst in conns.values():
        for s in lst:
            s.close()
    if probe is not None:
        probe.close()
    with open(a.out + ".tmp", "w") as f:
        json.dump(report, f)
    os.rename(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
