#!/bin/sh
# kasa-httpd speaks HTTP authentication as IIS does (issue 10): request bodies on every
# leg (Content-Length and chunked, 413 over the limit), Negotiate and NTLM both offered
# (in --schemes' order) and accepted, each login by the mechanism the client meant,
# X-Remote-User only for auth_request, and failures a person can read: a log line for
# every 401 that ends an exchange, NTLM's unknown user and wrong password in words, with
# the user.
. "$(dirname "$0")/lib.sh"

: "${KASA_HTTPD:?}"
HERE=$(dirname "$0")
gssapi_python # the raw exchanges need python3-gssapi
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
NAME=post.proseware.lab
ADDR=127.0.0.21
SPID=
stop_all() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
	cleanup
}
trap stop_all EXIT

lab_up --members 2
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
jq1() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(" + sys.argv[2] + ")")' "$T_WORK/lab.json" "$1"; }
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
BPORT=$(jq1 'd["balancer"]["port"]')
RESOLVE="$ARRAY:$BPORT:127.0.0.10"
EWS="http://$ARRAY:$BPORT/ews/exchange.asmx"
"$KASA" account create "$ASA" --computer >/dev/null
"$KASA" spn add HTTP/$ARRAY "$ASA" >/dev/null
"$KASA" array create $ARRAY --asa "$ASA" >/dev/null
for i in 1 2; do
	"$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(jq1 "d['members'][$i-1]['port']")" --address "127.0.0.1$i" >/dev/null
done
expect 0 "roll" "$KASA" roll $ARRAY
expect 0 "kinit as alice" kinit -k -t "$LAB/alice.keytab" alice
ALICE_NTLM=$(cut -d: -f3 "$LAB/ntlm.users")

head -c 1024 /dev/urandom | base64 -w0 >"$T_WORK/1k"
head -c 1048576 /dev/urandom | base64 -w0 | head -c 1048576 >"$T_WORK/1m"
# post AUTH SIZE CHUNKED: a SOAP-sized POST to EWS through the balancer; prints the code
post() {
	set -- "$1" "$2" "$3"
	if [ "$1" = ntlm ]; then auth="--ntlm -u PROSEWARE\\alice:$ALICE_NTLM"; else auth="--negotiate -u :"; fi
	if [ "$3" = chunked ]; then te="-H Transfer-Encoding:chunked"; else te=""; fi
	# shellcheck disable=SC2086
	curl -s -o "$T_WORK/post.body" -w '%{http_code}' --max-time 20 $auth $te --resolve "$RESOLVE" \
		-H 'Content-Type: text/xml' --data-binary "@$T_WORK/$2" "$EWS"
}
# answered CODE WHO: the last POST got CODE, and its body says who it was, by which
# mechanism (curl --negotiate could fall back to NTLM, since NTLM_USER_FILE is set).
answered() { test "$1" = 200 && grep -qF "hello $2" "$T_WORK/post.body"; }
for auth in kerberos ntlm; do
	if [ $auth = kerberos ]; then who='alice@PROSEWARE.LAB (Kerberos)'; else who='PROSEWARE\alice (NTLM)'; fi
	for size in 1k 1m; do
		for how in length chunked; do
			check "POST $size ($how) with $auth through the balancer: 200, as $who" answered "$(post $auth $size $how)" "$who"
		done
	done
done
check "the body answered is EWS's" grep -q "EWS on cas" "$T_WORK/post.body"
logs() { cat "$LAB"/cas*/auth.log; }
check "the members logged NTLM posts as NTLM, with alice's name" \
	sh -c "cat '$LAB'/cas*/auth.log | grep -q '\"PROSEWARE\\\\\\\\alice\",\"\",\"NTLM\",\"\",\"\",\"ok\"'"

# An unauthenticated POST gets its challenge, both schemes, Negotiate first.
curl -s -D "$T_WORK/h401" -o /dev/null --resolve "$RESOLVE" --data-binary "@$T_WORK/1k" "$EWS"
check "unauthenticated POST: 401" grep -q '^HTTP/1.1 401' "$T_WORK/h401"
check "offering Negotiate" grep -qi '^WWW-Authenticate: Negotiate' "$T_WORK/h401"
check "and NTLM" grep -qi '^WWW-Authenticate: NTLM' "$T_WORK/h401"
check "Negotiate first" test "$(grep -i '^WWW-Authenticate' "$T_WORK/h401" | head -1 | tr -d '\r')" = "WWW-Authenticate: Negotiate"
check "the 401 left a log line (no token)" sh -c "cat '$LAB'/cas*/auth.log | grep -q 'no token: the client was asked to authenticate'"
curl -s -D "$T_WORK/h200" -o /dev/null --negotiate -u : --resolve "$RESOLVE" "$EWS"
check "no X-Remote-User outside --auth-request" sh -c "! grep -qi '^X-Remote-User' '$T_WORK/h200'"

# A member of our own with a small body limit, for the limits and the failures.
kadmin_local "addprinc -randkey HTTP/$NAME" >/dev/null
kadmin_local "ktadd -k $T_WORK/post.keytab HTTP/$NAME" >/dev/null
printf 'PROSEWARE:alice:%s\n' "$ALICE_NTLM" >"$T_WORK/server.users"
chmod 600 "$T_WORK/server.users"
SP=$(free_port $ADDR)
NTLM_USER_FILE="$T_WORK/server.users" "$KASA_HTTPD" --keytab "$T_WORK/post.keytab" --member post \
	--listen $ADDR --port "$SP" --max-body 100000 --auth-log "$T_WORK/s.log" --log "$T_WORK/s.err" \
	--pidfile "$T_WORK/s.pid" &
SPID=$!
for _ in $(seq 50); do [ -s "$T_WORK/s.pid" ] && break; sleep 0.1; done
check "our kasa-httpd listens on $ADDR:$SP" test -s "$T_WORK/s.pid"
U="http://$NAME:$SP/ews/exchange.asmx"
R="$NAME:$SP:$ADDR"
c() { curl -s -o /dev/null -w '%{http_code}' --max-time 20 --resolve "$R" "$@"; }
check "a body over --max-body (Content-Length): 413" test "$(c --negotiate -u : --data-binary "@$T_WORK/1m" "$U")" = 413
check "within it: 200" test "$(c --negotiate -u : --data-binary "@$T_WORK/1k" "$U")" = 200
check "the 413 is in the message log" grep -q "over max_body (100000); 413" "$T_WORK/s.err"
# A chunked body cannot be answered before it ends: it is read, dropped, and then 413.
check "unauthenticated, a chunked body over --max-body: 413" \
	test "$(c -H Transfer-Encoding:chunked --data-binary "@$T_WORK/1m" "$U")" = 413
check "the message log says so, with its size" grep -q "of 1048576 bytes or more is over max_body (100000); 413" "$T_WORK/s.err"
expect 0 "with a Kerberos token, a chunked body over --max-body" \
	"$PY" "$HERE/cbclient.py" $ADDR "$SP" --plain --name $NAME --path /ews/exchange.asmx --post "$T_WORK/1m"
check "413" test "$(head -1 "$T_WORK/out" | tr -d '\r')" = "HTTP/1.1 413 Content Too Large"
expect 0 "by NTLM, a chunked body over --max-body on the NEGOTIATE leg" \
	"$PY" "$HERE/cbclient.py" $ADDR "$SP" --plain --name $NAME --mech ntlm --user 'PROSEWARE\alice' \
	--path /ews/exchange.asmx --post "$T_WORK/1m"
check "413" test "$(head -1 "$T_WORK/out" | tr -d '\r')" = "HTTP/1.1 413 Content Too Large"
curl -s -D "$T_WORK/hc" -o /dev/null --max-time 10 --resolve "$R" -H Transfer-Encoding:chunked \
	--data-binary "@$T_WORK/1k" "$U"
check "unauthenticated, a chunked body within it: 401" grep -q '^HTTP/1.1 401' "$T_WORK/hc"
check "offering Negotiate, then NTLM" test "$(grep -i '^WWW-Authenticate' "$T_WORK/hc" | tr -d '\r' | tr '\n' ' ')" = "WWW-Authenticate: Negotiate WWW-Authenticate: NTLM "
expect 0 "by NTLM, a chunked body within it on every leg" \
	"$PY" "$HERE/cbclient.py" $ADDR "$SP" --plain --name $NAME --mech ntlm --user 'PROSEWARE\alice' \
	--path /ews/exchange.asmx --post "$T_WORK/1k"
out_has "hello PROSEWARE\alice (NTLM)" "200 from EWS, as alice by NTLM"
check "still serving after the bodies over the limit" test "$(c --negotiate -u : "$U")" = 200

# NTLM as its own scheme: curl --ntlm, and a raw exchange on one connection.
expect 0 "curl --ntlm" curl -s --max-time 10 --ntlm -u "PROSEWARE\\alice:$ALICE_NTLM" --resolve "$R" "http://$NAME:$SP/whoami"
check "is alice by NTLM" test "$T_OUT" = "PROSEWARE\\alice NTLM"
# The legs one by one, gss-ntlmssp as the client (alice's password from the lab's
# NTLM_USER_FILE): NEGOTIATE, a 401 with the CHALLENGE under the NTLM scheme, AUTHENTICATE,
# 200, all on one keep-alive connection (cbclient fails if the connection changes).
lines=$(wc -l <"$T_WORK/s.log")
expect 0 "a raw NTLM exchange (gss-ntlmssp as the client, one connection)" \
	"$PY" "$HERE/cbclient.py" $ADDR "$SP" --plain --name $NAME --mech ntlm --user 'PROSEWARE\alice'
check "200, as alice by NTLM" test "$(printf '%s\n' "$T_OUT" | tr -d '\r' | tr '\n' '|')" = "HTTP/1.1 200 OK|PROSEWARE\\alice NTLM|"
check "after one 401 with the CHALLENGE as WWW-Authenticate: NTLM" \
	test "$(grep -c '^leg: 401 NTLM TlRMTVNTUAACAAAA' "$T_WORK/err")" -eq 1
# two_lines FIRST LAST: the auth log got two lines since $lines, holding FIRST and LAST.
two_lines() {
	tail -n +$((lines + 1)) "$T_WORK/s.log" >"$T_WORK/new.log"
	test "$(wc -l <"$T_WORK/new.log")" -eq 2 && head -n 1 "$T_WORK/new.log" | grep -qF "$1" &&
		tail -n 1 "$T_WORK/new.log" | grep -qF "$2"
}
check "two auth log lines: the CHALLENGE's 401 (result challenge), then NTLM, alice, ok" \
	two_lines '"NTLM","","","challenge","NTLM CHALLENGE sent' '"PROSEWARE\\alice","","NTLM","","","ok",""'
expect 0 "kasa log summary counts the exchange once" "$KASA" log summary --json "$T_WORK/new.log"
check "one NTLM login, no failure (a challenge is neither)" \
	test "$(json 0.ntlm) $(json 0.failed)" = "1 0"

# Failures in words, with the user where the token names one.
expect 0 "a wrong NTLM password" c --ntlm -u "PROSEWARE\\alice:wrong" "http://$NAME:$SP/whoami"
check "401" test "$T_OUT" = 401
check "logged: wrong password, for PROSEWARE\\alice" grep -q '"PROSEWARE\\\\alice",.*"failed","NTLM: wrong password' "$T_WORK/s.log"
expect 0 "an unknown NTLM user" c --ntlm -u "PROSEWARE\\mallory:x" "http://$NAME:$SP/whoami"
check "logged: unknown user, for PROSEWARE\\mallory" grep -q '"PROSEWARE\\\\mallory",.*"failed","NTLM: unknown user' "$T_WORK/s.log"
curl -s -o /dev/null --resolve "$R" "$U"
check "no token: a line too" grep -q '"failed","no token' "$T_WORK/s.log"
expect 0 "kasa log summary counts the failures by reason" "$KASA" log summary "$T_WORK/s.log"
out_has "no token" "including no token"

# logrotate: the logs moved away, SIGHUP, and the next lines go to new files there.
mv "$T_WORK/s.log" "$T_WORK/s.log.1"
mv "$T_WORK/s.err" "$T_WORK/s.err.1"
old_lines=$(wc -l <"$T_WORK/s.log.1")
kill -HUP "$SPID"
check "kasa-httpd says it reopened its logs, in a new log file" eventually grep -q "reopened the logs (SIGHUP)" "$T_WORK/s.err"
curl -s -o /dev/null --resolve "$R" "$U"
check "the next attempt's line is in a new auth log" grep -q '"failed","no token' "$T_WORK/s.log"
check "the old one kept its $old_lines lines and got no new one" test "$(wc -l <"$T_WORK/s.log.1")" -eq "$old_lines" -a "$old_lines" -ge 3
check "kasa-httpd still serves" test "$(c --negotiate -u : "$U")" = 200

# --schemes: Negotiate only refuses NTLM and offers only Negotiate.
# (Started as systemd's Type=notify would: READY=1 once it serves, STOPPING=1 at the end.)
kill "$SPID"; wait "$SPID" 2>/dev/null
rm -f "$T_WORK/s.pid"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(20)
print(s.recv(64).decode(), flush=True)
print(s.recv(64).decode())' "$T_WORK/notify" >"$T_WORK/notify.out" 2>&1 &
NOTIFY=$!
for _ in $(seq 50); do [ -S "$T_WORK/notify" ] && break; sleep 0.1; done
NOTIFY_SOCKET="$T_WORK/notify" NTLM_USER_FILE="$T_WORK/server.users" "$KASA_HTTPD" \
	--keytab "$T_WORK/post.keytab" --member post --listen $ADDR --port "$SP" --schemes negotiate \
	--auth-log "$T_WORK/s2.log" --log "$T_WORK/s2.err" --pidfile "$T_WORK/s.pid" &
SPID=$!
for _ in $(seq 50); do [ -s "$T_WORK/s.pid" ] && break; sleep 0.1; done
check "kasa-httpd told the service manager READY=1" eventually grep -qx "READY=1" "$T_WORK/notify.out"
check "our kasa-httpd listens on $ADDR:$SP" test -s "$T_WORK/s.pid"
curl -s -D "$T_WORK/h2" -o /dev/null --resolve "$R" "http://$NAME:$SP/whoami"
check "--schemes negotiate offers Negotiate alone" test "$(grep -ci '^WWW-Authenticate' "$T_WORK/h2")" -eq 1
check "curl --ntlm is refused" test "$(c --ntlm -u "PROSEWARE\\alice:$ALICE_NTLM" "http://$NAME:$SP/whoami")" = 401
check "and logged as a scheme not accepted" grep -q "the NTLM scheme is not accepted here" "$T_WORK/s2.log"
expect 2 "--schemes basic is bad usage" "$KASA_HTTPD" --keytab x --schemes basic
expect 2 "--channel-binding maybe is bad usage" "$KASA_HTTPD" --keytab x --channel-binding maybe
expect 2 "--max-body -1 is bad usage" "$KASA_HTTPD" --keytab x --max-body -1
expect 2 "--replay-cache memcache://x is bad usage" "$KASA_HTTPD" --keytab x --replay-cache memcache://x
err_has "is neither local nor redis://HOST:PORT" "saying what it takes"
expect 2 "--replay-cache redis://h:99999 is bad usage" "$KASA_HTTPD" --keytab x --replay-cache redis://h:99999
expect 2 "--replay-cache-failure maybe is bad usage" "$KASA_HTTPD" --keytab x --replay-cache-failure maybe
err_has "is not refuse or local" "saying what it takes"
printf '[kasa-httpd]\n\tkeytab = x\n\tschemes = ntlm, kerberos\n' >"$T_WORK/bad.conf"
expect 2 "schemes = ntlm, kerberos in the config is bad usage" "$KASA_HTTPD" --config "$T_WORK/bad.conf"
err_has "kerberos is not negotiate or ntlm" "naming the word"
kill "$SPID"; wait "$SPID" 2>/dev/null
SPID=
wait $NOTIFY
check "and STOPPING=1 when it stopped" grep -qx "STOPPING=1" "$T_WORK/notify.out"

# --schemes ntlm,negotiate offers NTLM first and still accepts both; --schemes ntlm offers
# and accepts NTLM alone.
# serve SCHEMES NAME: our kasa-httpd again, with --schemes SCHEMES and the logs NAME.log
# and NAME.err.
serve() {
	rm -f "$T_WORK/s.pid"
	NTLM_USER_FILE="$T_WORK/server.users" "$KASA_HTTPD" --keytab "$T_WORK/post.keytab" --member post \
		--listen $ADDR --port "$SP" --schemes "$1" --auth-log "$T_WORK/$2.log" --log "$T_WORK/$2.err" \
		--pidfile "$T_WORK/s.pid" &
	SPID=$!
	for _ in $(seq 50); do [ -s "$T_WORK/s.pid" ] && break; sleep 0.1; done
	check "kasa-httpd --schemes $1 listens" test -s "$T_WORK/s.pid"
}
offers() { curl -s -D - -o /dev/null --resolve "$R" "http://$NAME:$SP/whoami" | grep -i '^WWW-Authenticate' | tr -d '\r' | tr '\n' ' '; }
raw_ntlm() { "$PY" "$HERE/cbclient.py" $ADDR "$SP" --plain --name $NAME --mech ntlm --user 'PROSEWARE\alice'; }
raw_kerberos() { "$PY" "$HERE/cbclient.py" $ADDR "$SP" --plain --name $NAME; }
serve ntlm,negotiate s3
check "--schemes ntlm,negotiate offers NTLM, then Negotiate" \
	test "$(offers)" = "WWW-Authenticate: NTLM WWW-Authenticate: Negotiate "
expect 0 "curl --ntlm" curl -s --max-time 10 --ntlm -u "PROSEWARE\\alice:$ALICE_NTLM" --resolve "$R" "http://$NAME:$SP/whoami"
check "is alice by NTLM" test "$T_OUT" = "PROSEWARE\\alice NTLM"
expect 0 "the raw NTLM exchange" raw_ntlm
out_has "PROSEWARE\\alice NTLM" "is alice by NTLM"
expect 0 "curl --negotiate" curl -s --max-time 10 --negotiate -u : --resolve "$R" "http://$NAME:$SP/whoami"
check "is alice by Kerberos" test "$T_OUT" = "alice@PROSEWARE.LAB Kerberos"
kill "$SPID"; wait "$SPID" 2>/dev/null
serve ntlm s4
check "--schemes ntlm offers NTLM alone" test "$(offers)" = "WWW-Authenticate: NTLM "
expect 0 "the raw NTLM exchange" raw_ntlm
out_has "PROSEWARE\\alice NTLM" "is alice by NTLM"
expect 0 "a Negotiate token (Kerberos)" raw_kerberos
out_has "HTTP/1.1 401" "is refused"
check "and logged as a scheme not accepted" grep -q '"failed","the Negotiate scheme is not accepted here (schemes: ntlm)' "$T_WORK/s4.log"
kill "$SPID"; wait "$SPID" 2>/dev/null
SPID=

done_testing
