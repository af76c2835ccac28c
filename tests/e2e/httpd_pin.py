#!/usr/bin/env python3
"""One upstream connection shared by several clients, as a balancer that reuses its
keep-alive connections would share it: the abuse tests' way to send several users'
requests, and header-less ones, over one TCP connection to kasa-httpd.

  httpd_pin.py UPSTREAM_HOST UPSTREAM_PORT LISTEN_ADDR STEPS.json

STEPS is a list, run in order over the same upstream connection:
  {"curl": {"env": {...}, "host": NAME}}  run curl --negotiate for http://NAME/ through
                                          the relay (a fresh client connection each time)
  {"capture": {"env": {...}, "host": NAME}}  let curl send one Authorization header to
                                          the relay itself (never upstream), keep it
  {"raw": VALUE}                          send one GET with "Authorization: VALUE"; null
                                          sends none; "@" sends the last captured value
Prints one JSON line per step: the responses, each [status, user or null]: the user is
X-Remote-User (sent in --auth-request mode), else the first word of a 200 /whoami body.
"""
import json
import os
import socket
import subprocess
import sys

TIMEOUT = 15


def read_head(sock, buf):
    """Read up to the end of a message head; returns (head, rest) or (None, b"")."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head + b"\r\n\r\n", rest


def headers(head):
    out = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            out[k.strip().lower().decode()] = v.strip().decode("latin-1")
    return out


def read_response(sock):
    head, rest = read_head(sock, b"")
    if head is None:
        raise ConnectionError("the upstream connection was closed")
    h = headers(head)
    n = int(h.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the upstream connection was closed in a body")
        rest += chunk
    status = int(head.split(b" ", 2)[1])
    return head + rest[:n], status, h


def user_of(msg, status, h):
    """Who the response says authenticated: X-Remote-User, or /whoami's "USER MECH"."""
    if "x-remote-user" in h:
        return h["x-remote-user"]
    body = msg.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in msg else b""
    if status == 200 and body.strip():
        return body.split()[0].decode("latin-1")
    return None


def curl(spec, port, extra=()):
    env = dict(os.environ)
    env.update(spec.get("env", {}))
    host = spec["host"]
    cmd = ["curl", "-s", "-o", "/dev/null", "--max-time", str(TIMEOUT), "--negotiate", "-u", ":"]
    cmd += ["--resolve", "%s:%d:%s" % (host, port, LISTEN)] if not host[0].isdigit() else []
    cmd += list(extra) + ["http://%s:%d/whoami" % (host, port)]
    return subprocess.Popen(cmd, env=env)


def relay(lst, up, spec):
    """curl's requests over the shared upstream connection, until curl hangs up."""
    p = curl(spec, lst.getsockname()[1])
    seen = []
    try:
        down, _ = lst.accept()
        down.settimeout(TIMEOUT)
        buf = b""
        while True:
            req, buf = read_head(down, buf)
            if req is None:
                break
            up.sendall(req)
            resp, status, h = read_response(up)
            seen.append([status, user_of(resp, status, h)])
            down.sendall(resp)
        down.close()
    finally:
        p.wait(timeout=TIMEOUT)
    return seen


def capture(lst, spec):
    """The Authorization header curl sends after a bare Negotiate challenge."""
    p = curl(spec, lst.getsockname()[1])
    value = None
    try:
        down, _ = lst.accept()
        down.settimeout(TIMEOUT)
        buf = b""
        while value is None:
            req, buf = read_head(down, buf)
            if req is None:
                break
            value = headers(req).get("authorization")
            down.sendall(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\n"
                         b"Content-Length: 3\r\n%s\r\nno\n"
                         % (b"Connection: close\r\n" if value else b""))
        down.close()
    finally:
        p.wait(timeout=TIMEOUT)
    return value


def main():
    global LISTEN
    host, port, LISTEN, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(steps) as f:
        steps = json.load(f)
    up = socket.create_connection((host, port), timeout=TIMEOUT)
    lst = socket.socket()
    lst.bind((LISTEN, 0))
    lst.listen(1)
    lst.settimeout(TIMEOUT)
    captured = None
    for step in steps:
        if "curl" in step:
            out = relay(lst, up, step["curl"])
        elif "capture" in step:
            captured = capture(lst, step["capture"])
            out = [[0, "captured" if captured else None]]
        else:
            value = captured if step["raw"] == "@" else step["raw"]
            req = b"GET /whoami HTTP/1.1\r\nHost: pinned\r\n"
            if value is not None:
                req += b"Authorization: " + value.encode("latin-1") + b"\r\n"
            up.sendall(req + b"\r\n")
            resp, status, h = read_response(up)
            out = [[status, user_of(resp, status, h)]]
        print(json.dumps({"step": step if "raw" in step else list(step)[0], "responses": out}),
              flush=True)
    up.close()


if __name__ == "__main__":
    main()
