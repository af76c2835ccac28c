#!/bin/sh
# The array's replay cache in Redis (issue 14): kasa lab up --replay redis runs Redis on
# loopback with a password, and the members' kasa-httpd share it. A Negotiate token one
# member accepted is refused when replayed to another member, and to the same one; with
# Redis stopped, the default policy (refuse) holds and the member says so in its log;
# with Redis back, sharing resumes. Tokens are real: curl --negotiate as alice.
. "$(dirname "$0")/lib.sh"

ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'

lab_up --members 2 --replay redis
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
jq1() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(" + sys.argv[2] + ")")' "$T_WORK/lab.json" "$1"; }
RPORT=$(jq1 'd["redis"]["port"]')
check "Redis runs on loopback" sh -c "ss -Htln | grep -q '127.0.0.1:$RPORT '"
check "its password is the lab's, in a 0600 file" test "$(stat -c '%a' "$(jq1 'd["redis"]["password_file"]')")" = 600
check "a client without the password is refused" sh -c \
	"redis-cli -h 127.0.0.1 -p $RPORT SET x 1 2>&1 | grep -q NOAUTH"
check "no process's command line holds the password" sh -c \
	"! grep -lF -f '$LAB/redis/password' /proc/[0-9]*/cmdline 2>/dev/null | grep -q ."

"$KASA" account create "$ASA" --computer >/dev/null
"$KASA" spn add "HTTP/$ARRAY" "$ASA" >/dev/null
"$KASA" array create $ARRAY --asa "$ASA" >/dev/null
for i in 1 2; do
	"$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(jq1 "d['members'][$i-1]['port']")" \
		--address "127.0.0.1$i" >/dev/null
done
expect 0 "roll" "$KASA" roll $ARRAY
kinit -k -t "$LAB/alice.keytab" alice >/dev/null 2>&1

# member N: its kasa-httpd directly, by the array's name.
url() { echo "http://$ARRAY:$(jq1 "d['members'][$1-1]['http']['port']")/whoami"; }
res() { echo "$ARRAY:$(jq1 "d['members'][$1-1]['http']['port']"):127.0.0.1$1"; }
send() { curl -s -o /dev/null -w '%{http_code}' --resolve "$(res "$1")" -H "Authorization: $2" "$(url "$1")"; }
# token N: a fresh Negotiate token from curl's exchange with member N (accepted there).
token() {
	curl -s -v --negotiate -u : --resolve "$(res "$1")" "$(url "$1")" 2>"$T_WORK/v.err" >"$T_WORK/v.out"
	sed -n 's/^> Authorization: \(Negotiate .*\)\r*$/\1/p' "$T_WORK/v.err" | tr -d '\r' | head -1
}

TOKEN=$(token 1)
check "cas1 accepted a Kerberos token" grep -q "alice@PROSEWARE.LAB Kerberos" "$T_WORK/v.out"
check "replayed to cas2: refused" test "$(send 2 "$TOKEN")" = 401
check "cas2 says the array's replay cache saw it" \
	grep -q "Request is a replay (the array's replay cache: seen by a member before)" "$LAB/cas2/auth.log"
check "replayed to cas1: refused" test "$(send 1 "$TOKEN")" = 401
check "Redis holds the authenticator's key, with its expiry" sh -c \
	"REDISCLI_AUTH=\$(cat '$LAB/redis/password') redis-cli -h 127.0.0.1 -p $RPORT --scan --pattern 'kasa:rc:*' | grep -q ."

# The other policy, replay_cache_failure = local: a kasa-httpd of our own on cas2's keytab
# and the lab's Redis URL (from cas2's 0600 file, never on a command line). A login to it
# while Redis runs; then Redis stops.
LP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.12",0)); print(s.getsockname()[1])')
(cat "$LAB/cas2/kasa-httpd.conf"; printf '\treplay_cache_failure = local\n') >"$T_WORK/local.conf"
chmod 600 "$T_WORK/local.conf"
"$KASA_HTTPD" --config "$T_WORK/local.conf" --keytab "$LAB/cas2/array.keytab" --member fallback \
	--listen 127.0.0.12 --port "$LP" --auth-log "$T_WORK/f.auth" --log "$T_WORK/f.log" \
	--pidfile "$T_WORK/f.pid" >/dev/null 2>&1 &
FPID=$!
trap 'kill $FPID 2>/dev/null; cleanup' EXIT
eventually test -s "$T_WORK/f.pid"
# flogin: a fresh login to our kasa-httpd; its token in $T_WORK/f.tok.
flogin() {
	curl -s -v --negotiate -u : --resolve "$ARRAY:$LP:127.0.0.12" "http://$ARRAY:$LP/whoami" \
		2>"$T_WORK/f.err" >"$T_WORK/f.out"
	sed -n 's/^> Authorization: \(Negotiate .*\)\r*$/\1/p' "$T_WORK/f.err" | tr -d '\r' | head -1 >"$T_WORK/f.tok"
}
fsend() { curl -s -o /dev/null -w '%{http_code}' --resolve "$ARRAY:$LP:127.0.0.12" \
	-H "Authorization: $(cat "$T_WORK/f.tok")" "http://$ARRAY:$LP/whoami"; }
flogin
check "a login to our kasa-httpd (Redis up)" grep -q "alice@PROSEWARE.LAB Kerberos" "$T_WORK/f.out"
cp "$T_WORK/f.tok" "$T_WORK/f0.tok"

# Redis stopped mid-traffic: the default policy refuses, and says so.
kill "$(jq1 'd["redis"]["pid"]')"
eventually sh -c "! ss -Htln | grep -q '127.0.0.1:$RPORT '"
T2=$(token 2)
check "with Redis down, a fresh login to cas2 is refused (replay_cache_failure = refuse)" \
	sh -c "! grep -q 'alice@PROSEWARE.LAB Kerberos' '$T_WORK/v.out'"
check "and the auth log says why" grep -q "the array's replay cache cannot be reached; refused" "$LAB/cas2/auth.log"
check "and its log says it, as an error" grep -q "the array's replay cache cannot be reached" "$LAB/cas2/httpd.log"
check "cas2's kasa-httpd still runs" kill -0 "$(jq1 'd["members"][1]["http"]["pid"]')"

# replay_cache_failure = local with Redis down: logins go on against the member's own
# cache, which knows what it accepted before Redis went (kept there too) and what it
# accepts now; the log says so loudly.
cp "$T_WORK/f0.tok" "$T_WORK/f.tok"
check "replay_cache_failure = local: the token accepted before Redis stopped, replayed: 401" \
	test "$(fsend)" = 401
check "refused by this member's own cache" grep -q "Request is a replay (seen by this member before)" "$T_WORK/f.auth"
flogin
check "a fresh login is accepted with Redis down" grep -q "alice@PROSEWARE.LAB Kerberos" "$T_WORK/f.out"
check "and the log says it checks its own cache only" \
	grep -q "the array's replay cache cannot be reached .*checking this member's own cache only" "$T_WORK/f.log"
check "its replay is refused too" test "$(fsend)" = 401
kill "$FPID"


# Redis back (kasa lab up starts what does not run): sharing resumes.
expect 0 "kasa lab up starts Redis again" "$KASA" lab up --dir "$LAB"
sleep 1.2 # past the member's one-second pause before it tries Redis again
T3=$(token 2)
check "a fresh login to cas2 is accepted again" grep -q "alice@PROSEWARE.LAB Kerberos" "$T_WORK/v.out"
check "and its replay to cas1 is refused by the shared cache" test "$(send 1 "$T3")" = 401
check "as the array's" grep -q "the array's replay cache: seen by a member before" "$LAB/cas1/auth.log"

expect 2 "--replay memcache is bad usage" "$KASA" lab up --dir "$T_WORK/other" --replay memcache
err_one_line "in one line"
done_testing
