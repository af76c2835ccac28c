#!/usr/bin/env python3
"""Hold many idle or slowly trickling TCP connections open to one server, on loopback.

    flood.py ADDR PORT --idle N --trickle N [--source ADDR,...] [--interval S]
             [--rate N] --seconds S

Keeps N idle connections (connect, send nothing) and N trickling ones (one byte every
--interval seconds) open for --seconds, opening a new one whenever the server closes one,
as an attacker would, at most --rate new connections a second (default 2000), from the
--source addresses in turn. Bounded in count and time; it stops by itself. Prints one line:
"opened N closed-by-server N refused N longest S" (refused: connect() failed; longest:
the most seconds a connection the server closed had lived).
Writes READY to stdout's first line once the first round of connections is open.
"""
import argparse
import errno
import resource
import selectors
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("port", type=int)
    ap.add_argument("--idle", type=int, default=0)
    ap.add_argument("--trickle", type=int, default=0)
    ap.add_argument("--source", default=None)
    ap.add_argument("--interval", type=float, default=8.0)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=float, required=True)
    args = ap.parse_args()
    if not args.addr.startswith("127.") and args.addr != "::1":
        sys.exit("flood.py: loopback targets only")
    want = args.idle + args.trickle
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 64), hard))

    sel = selectors.DefaultSelector()
    conns = {}  # socket -> (kind, next byte time, bytes sent)
    born = {}  # socket -> when it was opened
    # What a trickler sends, a byte at a time: the header of a 100-byte token frame (the
    # member protocol), then its body; to an HTTP server it is just a slow request.
    slow = bytes([0, 0, 0, 100, 1]) + b"a" * 100
    stats = {"opened": 0, "closed": 0, "refused": 0, "longest": 0.0}
    deadline = time.monotonic() + args.seconds

    sources = args.source.split(",") if args.source else [None]
    budget = {"left": want, "at": time.monotonic()}

    def open_one(kind):
        # Pace new connections: --rate a second, the first round at once.
        now = time.monotonic()
        budget["left"] = min(want, budget["left"] + (now - budget["at"]) * args.rate)
        budget["at"] = now
        if budget["left"] < 1:
            return
        budget["left"] -= 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        source = sources[stats["opened"] % len(sources)]
        if source:
            s.bind((source, 0))
        s.setblocking(False)
        err = s.connect_ex((args.addr, args.port))
        if err not in (0, errno.EINPROGRESS):
            stats["refused"] += 1
            s.close()
            return
        stats["opened"] += 1
        conns[s] = (kind, time.monotonic() + args.interval, 0)
        born[s] = time.monotonic()
        sel.register(s, selectors.EVENT_READ)

    def top_up():
        kinds = [c[0] for c in conns.values()]
        for _ in range(args.idle - kinds.count("idle")):
            open_one("idle")
        for _ in range(args.trickle - kinds.count("trickle")):
            open_one("trickle")

    top_up()
    print("READY", flush=True)
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:  # the server closed it (or sent an error frame, then closed)
                stats["closed"] += 1
                stats["longest"] = max(stats["longest"], time.monotonic() - born.pop(s))
                sel.unregister(s)
                del conns[s]
                s.close()
        now = time.monotonic()
        for s, (kind, due, sent) in list(conns.items()):
            if kind == "trickle" and now >= due:
                try:
                    s.send(slow[sent % len(slow):sent % len(slow) + 1])
                except OSError:
                    pass
                conns[s] = (kind, now + args.interval, sent + 1)
        top_up()
        time.sleep(0.01)  # a steady pressure, not a busy loop
    for s in conns:
        s.close()
    print("opened %d closed-by-server %d refused %d longest %.1f" % (
        stats["opened"], stats["closed"], stats["refused"], stats["longest"]), flush=True)


if __name__ == "__main__":
    main()
