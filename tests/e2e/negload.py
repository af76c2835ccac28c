#!/usr/bin/python3
"""Continuous Negotiate load through a balancer: THREADS clients, each building a fresh
Kerberos token for HTTP@NAME (python3-gssapi, from the ccache in KRB5CCNAME) and sending
GET /whoami with it to ADDRESS:PORT, one request after another, until the file STOP
exists. Each request is a new authentication (a new authenticator, a new connection).

  negload.py ADDRESS PORT NAME STOP THREADS [KEYTAB]

With KEYTAB (the client's), each request starts from nothing: a new memory ccache, a TGT
and a service ticket from the KDC, so it uses the kvno the KDC issues at that moment (a
roll's new one as soon as it is committed). Without, the tickets in KRB5CCNAME are used.

Prints one JSON line at the end: requests, ok (200 with "Kerberos"), failed (anything
else, with the first few reasons). Exit 0 when it ran.
"""
import base64
import http.client
import json
import os
import sys
import threading

import gssapi

SPNEGO = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")  # what browsers and curl send


def main():
    addr, port, name, stop, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    keytab = sys.argv[6] if len(sys.argv) > 6 else None
    target = gssapi.Name("HTTP@" + name, gssapi.NameType.hostbased_service)
    lock = threading.Lock()
    totals = {"requests": 0, "ok": 0, "failed": 0, "reasons": []}

    def client(n):
        i = 0
        while not os.path.exists(stop):
            why = None
            i += 1
            try:
                creds = None
                if keytab:
                    creds = gssapi.Credentials(usage="initiate", store={
                        "client_keytab": keytab, "ccache": f"MEMORY:negload-{n}-{i}"})
                ctx = gssapi.SecurityContext(name=target, usage="initiate", mech=SPNEGO, creds=creds)
                token = ctx.step()
                conn = http.client.HTTPConnection(addr, port, timeout=20)
                conn.request("GET", "/whoami", headers={
                    "Host": name, "Authorization": "Negotiate " + base64.b64encode(token).decode()})
                r = conn.getresponse()
                body = r.read().decode(errors="replace")
                conn.close()
                if r.status != 200 or "Kerberos" not in body:
                    why = f"{r.status} {body.strip()[:80]}"
            except Exception as e:  # a failed authentication, whatever failed
                why = f"{type(e).__name__}: {e}"[:160]
            with lock:
                totals["requests"] += 1
                if why is None:
                    totals["ok"] += 1
                else:
                    totals["failed"] += 1
                    if len(totals["reasons"]) < 5:
                        totals["reasons"].append(why)

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
