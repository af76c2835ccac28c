#!/bin/sh
# kasa-httpd under abuse (issue 9): thousands of connections that never finish a request
# while real clients authenticate from another address, closed by the deadline for a
# whole request head however they trickle; an NTLM identity that must not
# outlive its exchange on a connection a balancer shares between users; names built to
# run as spreadsheet formulas in the auth log.
. "$(dirname "$0")/lib.sh"

: "${KASA_HTTPD:?}"
HERE=$(dirname "$0")
NAME=abuse.proseware.lab
ADDR=127.0.0.21
APID=
BPID=
FLOOD=
BFLOOD=
stop_httpd() {
	for p in $FLOOD $BFLOOD $APID $BPID; do
		kill "$p" 2>/dev/null
	done
	for p in $FLOOD $BFLOOD $APID $BPID; do
		wait "$p" 2>/dev/null
	done
	cleanup
}
trap stop_httpd EXIT

lab_up
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(" + sys.argv[2] + ")")' "$1" "$2"; }
secret() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# Kerberos: a service key of our own for HTTP/abuse.proseware.lab; alice and carol.
kadmin_local "addprinc -randkey HTTP/$NAME" >/dev/null
kadmin_local "ktadd -k $T_WORK/abuse.keytab HTTP/$NAME" >/dev/null
kadmin_local 'addprinc -randkey carol' >/dev/null
kadmin_local "ktadd -k $T_WORK/carol.keytab carol" >/dev/null
expect 0 "kinit as alice" kinit -k -t "$LAB/alice.keytab" alice
expect 0 "kinit as carol (own cache)" env KRB5CCNAME="FILE:$T_WORK/carol.cc" kinit -k -t "$T_WORK/carol.keytab" carol
# NTLM: alice and bob, each client knowing only its own password (gss-ntlmssp's file).
printf 'PROSEWARE:alice:%s\n' "$(secret)" >"$T_WORK/alice.users"
printf 'PROSEWARE:bob:%s\n' "$(secret)" >"$T_WORK/bob.users"
cat "$T_WORK/alice.users" "$T_WORK/bob.users" >"$T_WORK/server.users"
chmod 600 "$T_WORK"/*.users

# A: the normal mode, 500 connections per address, a 5 s deadline for a request head,
# started with a soft limit of 1,024 descriptors (select()'s), which it must raise itself
# to hold the flood's 2,000. B: --auth-request, no deadline (header_timeout = 0).
AP=$(free_port $ADDR)
MP=$(free_port 127.0.0.1)
(
	ulimit -Sn 1024 && exec env NTLM_USER_FILE="$T_WORK/server.users" "$KASA_HTTPD" \
		--keytab "$T_WORK/abuse.keytab" --member abuse-a --listen $ADDR --port "$AP" \
		--per-ip-limit 500 --header-timeout 5 --metrics-port "$MP" --auth-log "$T_WORK/a.log" \
		--log "$T_WORK/a.err" --pidfile "$T_WORK/a.pid"
) &
APID=$!
BP=$(free_port $ADDR)
printf '[kasa-httpd]\n\tkeytab = %s\n\tmember = abuse-b\n\tlisten = %s\n\tauth_request = true\n\tthreads = 3\n\tper_ip_limit = 50\n\tconnection_limit = 2000\n\tconnection_timeout = 7\n\theader_timeout = 0\n' \
	"$T_WORK/abuse.keytab" $ADDR >"$T_WORK/b.conf"
NTLM_USER_FILE="$T_WORK/server.users" "$KASA_HTTPD" --config "$T_WORK/b.conf" --port "$BP" \
	--auth-log "$T_WORK/b.log" --log "$T_WORK/b.err" --pidfile "$T_WORK/b.pid" &
BPID=$!
for _ in $(seq 50); do
	[ -s "$T_WORK/a.pid" ] && [ -s "$T_WORK/b.pid" ] && break
	sleep 0.1
done
check "both kasa-httpd listen" test -s "$T_WORK/a.pid" -a -s "$T_WORK/b.pid"
check "A says its limits: 500 per address, 10000 in all, 10 s idle, 5 s for a head" \
	grep -q '10000 connections (500 per address), 10 s idle timeout, 5 s header timeout' "$T_WORK/a.err"
CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
check "A's thread pool is one thread per core by default: $CORES" \
	grep -q "; $CORES threads, 10000 connections" "$T_WORK/a.err"
SOFT=$(awk '/^Max open files/ { print $4 }' "/proc/$APID/limits")
check "A, started with a soft limit of 1,024 descriptors, raised it for 10,000 connections ($SOFT)" \
	test "$SOFT" -gt 10000
check "B took threads, limits and timeouts from the config file" \
	grep -q '3 threads, 2000 connections (50 per address), 7 s idle timeout, no header timeout' "$T_WORK/b.err"
expect 2 "a limit that is not a number is refused" "$KASA_HTTPD" --keytab "$T_WORK/abuse.keytab" --per-ip-limit lots
err_has "--per-ip-limit lots is not a number from 0 to" "and the flag is named"
expect 2 "a header timeout over an hour is refused" "$KASA_HTTPD" --keytab "$T_WORK/abuse.keytab" --header-timeout 3601
err_has "--header-timeout 3601 is not a number from 0 to 3600" "and the flag is named"
printf '[kasa-httpd]\n\tkeytab = x\n\tconnection_timeout = 0\n' >"$T_WORK/bad.conf"
expect 1 "a zero timeout in the config file is refused" "$KASA_HTTPD" --config "$T_WORK/bad.conf"
err_has "connection_timeout = 0 is not a number from 1 to 3600" "naming the key"

# curl arguments for Kerberos to A, split into words where used (unquoted on purpose).
KRB="--resolve $NAME:$AP:$ADDR http://$NAME:$AP/whoami"
expect 0 "Kerberos to A" curl -s --max-time 5 --negotiate -u : $KRB
check "is alice by Kerberos" test "$T_OUT" = "alice@PROSEWARE.LAB Kerberos"
expect 0 "NTLM to A (no service key for its address: Negotiate falls back)" \
	env NTLM_USER_FILE="$T_WORK/alice.users" curl -s --max-time 5 --negotiate -u : "http://$ADDR:$AP/whoami"
check "is alice of PROSEWARE, by NTLM" test "$T_OUT" = "PROSEWARE\\alice NTLM"

# The flood: 2,000 connections from 127.0.0.2 and 500 from each of 127.0.0.4-6, every
# one trickling a byte every 3 s into a request head it never finishes (which keeps
# restarting the idle timeout), and one idle probe from 127.0.0.7. At the same time on B,
# without a deadline, one trickling connection and one idle probe.
python3 "$HERE/httpd_flood.py" $ADDR "$AP" --from 127.0.0.2:2000 --from 127.0.0.4:500 \
	--from 127.0.0.5:500 --from 127.0.0.6:500 --probe 127.0.0.7 --duration 24 --trickle 3 \
	--ready "$T_WORK/flood.ready" --out "$T_WORK/flood.out" 2>"$T_WORK/flood.err" &
FLOOD=$!
python3 "$HERE/httpd_flood.py" $ADDR "$BP" --from 127.0.0.8:1 --probe 127.0.0.9 --duration 13 \
	--trickle 2 --ready "$T_WORK/bflood.ready" --out "$T_WORK/bflood.out" 2>"$T_WORK/bflood.err" &
BFLOOD=$!
for _ in $(seq 150); do
	[ -s "$T_WORK/flood.ready" ] && break
	sleep 0.1
done
HELD=$(ls "/proc/$APID/fd" | wc -l) # now, before the deadline (5 s) closes them
check "the flood opened its connections" test -s "$T_WORK/flood.ready"
R="$T_WORK/flood.ready"
check "2,000 connections from 127.0.0.2 were opened" test "$(jget "$R" 'd["opened"]["127.0.0.2"]')" -eq 2000
check "the per-address limit kept 500 of them ($(jget "$R" 'd["accepted"]["127.0.0.2"]'))" \
	test "$(jget "$R" 'd["accepted"]["127.0.0.2"]')" -eq 500
check "127.0.0.4-6 kept 500 each: 2,000 held at once, over select()'s 1,024 and A's first soft limit" \
	test "$(jget "$R" 'sum(d["accepted"].values())')" -eq 2000
# Past the connection limit libmicrohttpd stops accepting, and a connection waiting in the
# listen queue looks held to the flood: count what A itself holds.
check "and A holds them: $HELD descriptors open" test "$HELD" -ge 2000
# While the flood holds: real clients from 127.0.0.3, over more than the idle timeout.
: >"$T_WORK/real.out"
for i in $(seq 12); do
	curl -s --max-time 5 --interface 127.0.0.3 --negotiate -u : $KRB >>"$T_WORK/real.out"
	echo >>"$T_WORK/real.out"
	if [ "$i" -eq 6 ]; then
		NTLM_USER_FILE="$T_WORK/alice.users" curl -s --max-time 5 --interface 127.0.0.3 \
			--negotiate -u : "http://$ADDR:$AP/whoami" >>"$T_WORK/real.out"
		echo >>"$T_WORK/real.out"
	fi
	sleep 1
done
check "12 Kerberos requests from 127.0.0.3 during the flood: all served" \
	test "$(grep -c '^alice@PROSEWARE.LAB Kerberos$' "$T_WORK/real.out")" -eq 12
check "and an NTLM one" grep -q '^PROSEWARE\\alice NTLM$' "$T_WORK/real.out"
wait "$FLOOD"
FLOOD=
O="$T_WORK/flood.out"
check "the flood ended by itself" test -s "$O"
check "trickling did not keep them: all 2,000 were closed, none alive at the end" \
	test "$(jget "$O" 'sum(d["closed"].values())') $(jget "$O" 'sum(d["alive_at_end"].values())')" = "2000 0"
check "each 5-6 s after it opened: the deadline, not the 10 s idle timeout ($(jget "$O" 'd["closed_after"]'))" \
	python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["closed_after"].values(); sys.exit(0 if all(r and 4.5 <= r[0] and r[1] <= 7 for r in c) else 1)' "$O"
check "the idle probe too ($(jget "$O" 'd["probe_closed_after"]') s)" \
	python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["probe_closed_after"]; sys.exit(0 if t is not None and 4.5 <= t <= 7 else 1)' "$O"
check "counted in kasa_httpd_header_timeouts_total: 2,001" \
	test "$(curl -s --max-time 5 "http://127.0.0.1:$MP/metrics" | sed -n 's/^kasa_httpd_header_timeouts_total //p')" = 2001
check "and said in 1 to 3 log lines, not 2,001" \
	test "$(grep -c 'header timeout: closed' "$T_WORK/a.err")" -ge 1 -a "$(grep -c 'header timeout: closed' "$T_WORK/a.err")" -le 3
check "naming the deadline and an address of the flood" \
	grep -q 'header timeout: closed [0-9]* connections whose request head was not complete 5 s after .* the last from 127\.0\.0\.[2-7]$' "$T_WORK/a.err"
check "1,500 refusals and 2,001 closures did not become 3,501 log lines" test "$(grep -c libmicrohttpd "$T_WORK/a.err")" -le 30
wait "$BFLOOD"
BFLOOD=
O="$T_WORK/bflood.out"
check "B, without a deadline: a trickling connection outlived the 7 s idle timeout" \
	test "$(jget "$O" 'd["alive_at_end"]["127.0.0.8"]')" -eq 1
check "and its idle probe was closed by the idle timeout ($(jget "$O" 'd["probe_closed_after"]') s)" \
	python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["probe_closed_after"]; sys.exit(0 if t is not None and 6 <= t <= 10 else 1)' "$O"
check "B closed nothing for a late head" sh -c "! grep -q 'header timeout: closed' '$T_WORK/b.err'"

# Keep-alive: the deadline starts again when a response ends. A request 3 s after the
# connection opened, a second 3.5 s after the first answer (6.5 s after the connection
# opened, so a deadline counted from the opening would have cut it): both answered; then,
# idle, it is closed 5-6 s after the second answer, before the 10 s idle timeout.
expect 0 "keep-alive on A: two requests, then idle" python3 -c '
import json, socket, sys, time
def answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return None
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    while len(body) < (n[0] if n else 0):
        body += s.recv(4096)
    return int(head.split()[1])
req = b"GET /whoami HTTP/1.1\r\nHost: abuse\r\n\r\n"
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15, source_address=("127.0.0.3", 0))
t0 = time.monotonic()
time.sleep(3)
s.sendall(req)
first = answer(s)
time.sleep(3.5)
s.sendall(req)
second = answer(s)
t1 = time.monotonic()
gone = s.recv(4096) == b""
print(json.dumps({"first": first, "second": second, "second_at": round(t1 - t0, 1),
                  "closed_after": round(time.monotonic() - t1, 1) if gone else None}))
' $ADDR "$AP"
printf '%s\n' "$T_OUT" >"$T_WORK/keepalive.out"
K="$T_WORK/keepalive.out"
check "both requests answered (401: no token), the second $(jget "$K" 'd["second_at"]') s after it opened" \
	test "$(jget "$K" 'd["first"], d["second"]')" = "401 401"
check "then closed idle $(jget "$K" 'd["closed_after"]') s after the second answer: the deadline, before the idle timeout" \
	python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["closed_after"]; sys.exit(0 if t is not None and 4.5 <= t <= 7 else 1)' "$K"
expect 0 "A still serves after the flood" curl -s --max-time 5 --negotiate -u : $KRB

# One upstream connection shared by users, as a balancer's keep-alive pool would share
# it: --auth-request never applies an NTLM identity to a later request.
ALICE="{\"NTLM_USER_FILE\": \"$T_WORK/alice.users\"}"
BOB="{\"NTLM_USER_FILE\": \"$T_WORK/bob.users\", \"KRB5CCNAME\": \"FILE:$T_WORK/none.cc\"}"
CAROL="{\"KRB5CCNAME\": \"FILE:$T_WORK/carol.cc\"}"
cat >"$T_WORK/b.steps" <<EOF
[{"curl": {"env": $ALICE, "host": "$ADDR"}},
 {"raw": null},
 {"curl": {"env": $BOB, "host": "$ADDR"}},
 {"raw": null},
 {"curl": {"env": $ALICE, "host": "$ADDR"}},
 {"capture": {"env": $CAROL, "host": "$NAME"}},
 {"raw": "@"},
 {"raw": null},
 {"curl": {"env": $ALICE, "host": "$ADDR"}},
 {"raw": "Negotiate YA=="},
 {"raw": null}]
EOF
expect 0 "auth-request: users take turns on one connection" python3 "$HERE/httpd_pin.py" $ADDR "$BP" $ADDR "$T_WORK/b.steps"
printf '%s\n' "$T_OUT" >"$T_WORK/b.res"
step() { sed -n "$1p" "$2" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["responses"]))'; }
check "alice by NTLM (NEGOTIATE, CHALLENGE, AUTHENTICATE): 200" test "$(step 1 "$T_WORK/b.res")" = '[[401, null], [200, "PROSEWARE\\alice"]]'
check "then no header on the same connection: 401, not alice" test "$(step 2 "$T_WORK/b.res")" = '[[401, null]]'
check "bob on it next: bob, never alice" test "$(step 3 "$T_WORK/b.res")" = '[[401, null], [200, "PROSEWARE\\bob"]]'
check "then no header: 401" test "$(step 4 "$T_WORK/b.res")" = '[[401, null]]'
check "alice again, then carol's Kerberos header: carol" test "$(step 7 "$T_WORK/b.res")" = '[[200, "carol@PROSEWARE.LAB"]]'
check "then no header: 401" test "$(step 8 "$T_WORK/b.res")" = '[[401, null]]'
check "alice, then a failed Negotiate: 401" test "$(step 10 "$T_WORK/b.res")" = '[[401, null]]'
check "then no header: 401" test "$(step 11 "$T_WORK/b.res")" = '[[401, null]]'
check "no response on it named alice but alice's own" test "$(grep -c 'alice' "$T_WORK/b.res")" -eq 3

# The normal mode: NTLM authenticates the connection (as IIS does) for header-less
# requests of the same client, but any new Authorization header resets it.
cat >"$T_WORK/a.steps" <<EOF
[{"curl": {"env": $ALICE, "host": "$ADDR"}},
 {"raw": null},
 {"capture": {"env": $CAROL, "host": "$NAME"}},
 {"raw": "@"},
 {"raw": null},
 {"curl": {"env": $ALICE, "host": "$ADDR"}},
 {"raw": "Negotiate YA=="},
 {"raw": null},
 {"curl": {"env": $ALICE, "host": "$ADDR"}},
 {"raw": "Basic YWxpY2U6eA=="},
 {"raw": null},
 {"curl": {"env": $ALICE, "host": "$ADDR"}},
 {"raw": "Negotiate !!!"},
 {"raw": null}]
EOF
expect 0 "normal mode: the same turns on one connection" python3 "$HERE/httpd_pin.py" $ADDR "$AP" $ADDR "$T_WORK/a.steps"
printf '%s\n' "$T_OUT" >"$T_WORK/a.res"
check "alice by NTLM, then no header: still alice (the connection is hers)" \
	test "$(step 2 "$T_WORK/a.res")" = '[[200, "PROSEWARE\\alice"]]'
check "carol's Kerberos header on it: carol" test "$(step 4 "$T_WORK/a.res")" = '[[200, "carol@PROSEWARE.LAB"]]'
check "then no header: 401 (Kerberos ended alice's NTLM identity)" test "$(step 5 "$T_WORK/a.res")" = '[[401, null]]'
check "a failed Negotiate after alice: 401" test "$(step 7 "$T_WORK/a.res")" = '[[401, null]]'
check "then no header: 401" test "$(step 8 "$T_WORK/a.res")" = '[[401, null]]'
check "Basic after alice: 401, then no header: 401" \
	test "$(step 10 "$T_WORK/a.res") $(step 11 "$T_WORK/a.res")" = '[[401, null]] [[401, null]]'
check "a malformed header after alice: 400, then no header: 401" \
	test "$(step 13 "$T_WORK/a.res") $(step 14 "$T_WORK/a.res")" = '[[400, null]] [[401, null]]'

# Formula-looking names in the auth log. A ticket whose service name begins with "=":
# alice's real token with HTTP changed to =cmd (the name travels in the clear).
NTLM_USER_FILE=/dev/null curl -s -v --negotiate -u : $KRB 2>"$T_WORK/v.err" >/dev/null
TOKEN=$(sed -n 's/^> Authorization: Negotiate \(.*\)\r*$/\1/p' "$T_WORK/v.err" | tr -d '\r' | head -1)
check "captured a Kerberos token" test -n "$TOKEN"
EVIL=$(printf '%s' "$TOKEN" | python3 -c 'import base64,sys; t=base64.b64decode(sys.stdin.read()); print(base64.b64encode(t.replace(b"HTTP", b"=cmd", 1)).decode())')
check "the doctored token is refused" test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Negotiate $EVIL" "http://$ADDR:$AP/whoami")" = 401
tail -1 "$T_WORK/a.log" >"$T_WORK/evil.line"
check "its SPN is logged with a quote in front" grep -q "\"'=cmd/$NAME@PROSEWARE.LAB\"" "$T_WORK/evil.line"
# A principal that begins with "=", really authenticated.
kadmin_local 'addprinc -randkey =evil' >/dev/null
kadmin_local "ktadd -k $T_WORK/evil.keytab =evil" >/dev/null
KRB5CCNAME="FILE:$T_WORK/evil.cc" kinit -k -t "$T_WORK/evil.keytab" '=evil' 2>/dev/null
expect 0 "=evil authenticates by Kerberos" env KRB5CCNAME="FILE:$T_WORK/evil.cc" curl -s --max-time 5 --negotiate -u : $KRB
check "as =evil" test "$T_OUT" = "=evil@PROSEWARE.LAB Kerberos"
check "logged as '=evil" grep -q "\"'=evil@PROSEWARE.LAB\",\"HTTP/$NAME@PROSEWARE.LAB\",\"Kerberos\"" "$T_WORK/a.log"
check "no field of any line starts a formula" sh -c "! grep -qE '(^|,)\"[=+@-]' '$T_WORK/a.log' '$T_WORK/b.log'"
expect 0 "kasa log summary reads the logs" "$KASA" log summary "$T_WORK/a.log" "$T_WORK/b.log"
check "with no skipped line" test -z "$T_ERR"

done_testing
