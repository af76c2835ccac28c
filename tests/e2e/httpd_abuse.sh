#!/bin/sh
# kasa-httpd under abuse (issue 9): thousands of connections that never finish a request
# while real clients authenticate from another address; an NTLM identity that must not
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
stop_httpd() {
	for p in $FLOOD $APID $BPID; do
		kill "$p" 2>/dev/null
	done
	for p in $FLOOD $APID $BPID; do
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

# A: the normal mode, 500 connections per address. B: --auth-request.
AP=$(free_port $ADDR)
NTLM_USER_FILE="$T_WORK/server.users" "$KASA_HTTPD" --keytab "$T_WORK/abuse.keytab" --member abuse-a \
	--listen $ADDR --port "$AP" --per-ip-limit 500 --auth-log "$T_WORK/a.log" --log "$T_WORK/a.err" \
	--pidfile "$T_WORK/a.pid" &
APID=$!
BP=$(free_port $ADDR)
printf '[kasa-httpd]\n\tkeytab = %s\n\tmember = abuse-b\n\tlisten = %s\n\tauth_request = true\n\tthreads = 3\n\tper_ip_limit = 50\n\tconnection_limit = 2000\n\tconnection_timeout = 7\n' \
	"$T_WORK/abuse.keytab" $ADDR >"$T_WORK/b.conf"
NTLM_USER_FILE="$T_WORK/server.users" "$KASA_HTTPD" --config "$T_WORK/b.conf" --port "$BP" \
	--auth-log "$T_WORK/b.log" --log "$T_WORK/b.err" --pidfile "$T_WORK/b.pid" &
BPID=$!
for _ in $(seq 50); do
	[ -s "$T_WORK/a.pid" ] && [ -s "$T_WORK/b.pid" ] && break
	sleep 0.1
done
check "both kasa-httpd listen" test -s "$T_WORK/a.pid" -a -s "$T_WORK/b.pid"
check "A says its limits: 500 per address, 10000 in all, 10 s idle" \
	grep -q '10000 connections (500 per address), 10 s idle timeout' "$T_WORK/a.err"
check "B took threads and limits from the config file" \
	grep -q '3 threads, 2000 connections (50 per address), 7 s idle timeout' "$T_WORK/b.err"
expect 2 "a limit that is not a number is refused" "$KASA_HTTPD" --keytab "$T_WORK/abuse.keytab" --per-ip-limit lots
err_has "--per-ip-limit lots is not a number from 0 to" "and the flag is named"
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
# restarting the idle timeout), and one idle probe from 127.0.0.7.
python3 "$HERE/httpd_flood.py" $ADDR "$AP" --from 127.0.0.2:2000 --from 127.0.0.4:500 \
	--from 127.0.0.5:500 --from 127.0.0.6:500 --probe 127.0.0.7 --duration 24 --trickle 3 \
	--ready "$T_WORK/flood.ready" --out "$T_WORK/flood.out" 2>"$T_WORK/flood.err" &
FLOOD=$!
for _ in $(seq 150); do
	[ -s "$T_WORK/flood.ready" ] && break
	sleep 0.1
done
check "the flood opened its connections" test -s "$T_WORK/flood.ready"
R="$T_WORK/flood.ready"
check "2,000 connections from 127.0.0.2 were opened" test "$(jget "$R" 'd["opened"]["127.0.0.2"]')" -eq 2000
check "the per-address limit kept 500 of them ($(jget "$R" 'd["accepted"]["127.0.0.2"]'))" \
	test "$(jget "$R" 'd["accepted"]["127.0.0.2"]')" -eq 500
check "127.0.0.4-6 kept 500 each: 2,000 held at once, over select()'s 1,024" \
	test "$(jget "$R" 'sum(d["accepted"].values())')" -eq 2000
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
check "trickling kept connections past the idle timeout: the limit, not the timeout, bounded them" \
	test "$(jget "$O" 'd["alive_at_end"]["127.0.0.2"]')" -eq 500
check "the idle probe was closed after the 10 s timeout ($(jget "$O" 'd["probe_closed_after"]') s)" \
	python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["probe_closed_after"]; sys.exit(0 if t is not None and 9 <= t <= 16 else 1)' "$O"
check "1,500 refusals did not become 1,500 log lines" test "$(grep -c libmicrohttpd "$T_WORK/a.err")" -le 30
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
