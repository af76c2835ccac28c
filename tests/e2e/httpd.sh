#!/bin/sh
# The seed end to end: alice asks for the array's EWS URL through HAProxy with
# curl --negotiate. Before the ASA exists the auth log says NTLM (Kerberos failed,
# Negotiate fell back); after the ASA, its SPNs and a roll, Kerberos on every member, also
# while rolls happen. Then the hostile side: malformed Authorization headers, a replayed
# token, a principal built to forge log lines.
. "$(dirname "$0")/lib.sh"

ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
lab_up --members 3
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
jq1() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(" + sys.argv[2] + ")")' "$T_WORK/lab.json" "$1"; }
BPORT=$(jq1 'd["balancer"]["port"]')
URL="http://$ARRAY:$BPORT/ews/exchange.asmx"
RESOLVE="$ARRAY:$BPORT:127.0.0.10"
logs() { cat "$LAB"/cas*/auth.log 2>/dev/null; }
# get N: N requests through the balancer; prints the HTTP codes and bodies
get() {
	for _ in $(seq "$1"); do
		curl -s --negotiate -u : --resolve "$RESOLVE" "$URL"
	done
}

check "the balancer listens on 127.0.0.10" test "$(jq1 'd["balancer"]["address"]')" = 127.0.0.10
expect 0 "kinit as alice" kinit -k -t "$LAB/alice.keytab" alice

# Before the ASA: Negotiate falls back to NTLM, and the log says so.
run get 6
check "six requests before the ASA all succeed" test "$(printf '%s\n' "$T_OUT" | grep -c 'hello PROSEWARE\\alice (NTLM)')" -eq 6
check "the auth logs say NTLM, six times" test "$(logs | grep -c '"NTLM","","","ok"')" -eq 6
check "and no Kerberos yet" test "$(logs | grep -c '"Kerberos"')" -eq 0

# kasa inspect on the tokens of that exchange, as curl sent and received them.
curl -s -v --negotiate -u : --resolve "$RESOLVE" "$URL" 2>"$T_WORK/ntlm.v" >/dev/null
sed -n 's/^> Authorization: \(Negotiate .*\)\r*$/\1/p' "$T_WORK/ntlm.v" | tr -d '\r' >"$T_WORK/ntlm.auth"
sed -n 's/^< WWW-Authenticate: \(Negotiate .*\)\r*$/\1/p' "$T_WORK/ntlm.v" | tr -d '\r' | grep -v '^Negotiate$' >"$T_WORK/ntlm.chal"
expect 0 "inspect the client's first token" "$KASA" inspect "$(sed -n 1p "$T_WORK/ntlm.auth")"
out_has "NTLMSSP NEGOTIATE (Kerberos was not used)" "it is NTLM's NEGOTIATE, not Kerberos"
expect 0 "inspect the server's challenge" "$KASA" inspect "WWW-Authenticate: $(sed -n 1p "$T_WORK/ntlm.chal")"
out_has "NTLMSSP CHALLENGE" "it is the CHALLENGE"
expect 0 "inspect the client's answer (from stdin, --json)" sh -c "sed -n 2p '$T_WORK/ntlm.auth' | '$KASA' inspect - --json"
check "AUTHENTICATE names alice" test "$(json ntlm.user)" = alice
check "in the domain PROSEWARE" test "$(json ntlm.domain)" = PROSEWARE

# The ASA, its SPNs, the array, a roll.
expect 0 "create the ASA" "$KASA" account create "$ASA" --computer
for spn in http/outlook.proseware.lab HTTP/outlook.proseware.lab exchangeMDB/outlook; do
	"$KASA" spn add "$spn" "$ASA" >/dev/null 2>&1
done
expect 0 "create the array" "$KASA" array create $ARRAY --asa "$ASA"
for i in 1 2 3; do
	expect 0 "add cas$i" "$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(jq1 "d['members'][$i-1]['port']")" --address "127.0.0.1$i"
done
expect 0 "roll" "$KASA" roll $ARRAY

run get 9
check "nine requests after the roll all use Kerberos" test "$(printf '%s\n' "$T_OUT" | grep -c 'hello alice@PROSEWARE.LAB (Kerberos)')" -eq 9
for i in 1 2 3; do
	check "cas$i logged Kerberos for alice, with the ticket's SPN, kvno and enctype" \
		grep -Eq '"cas'$i'","[^"]*","alice@PROSEWARE.LAB","HTTP/outlook.proseware.lab@PROSEWARE.LAB","Kerberos","[0-9]+","aes256-cts-hmac-sha1-96","ok"' "$LAB/cas$i/auth.log"
done
expect 0 "/whoami says who and how" curl -s --negotiate -u : --resolve "$RESOLVE" "http://$ARRAY:$BPORT/whoami"
check "alice, by Kerberos" test "$T_OUT" = "alice@PROSEWARE.LAB Kerberos"

# Requests keep flowing during two rolls: none fails.
( for _ in $(seq 40); do
	curl -s -o /dev/null -w '%{http_code}\n' --negotiate -u : --resolve "$RESOLVE" "$URL"
done >"$T_WORK/during.codes" ) &
FLOW=$!
"$KASA" roll $ARRAY >/dev/null 2>&1 && "$KASA" roll $ARRAY >/dev/null 2>&1
ROLLS=$?
wait $FLOW
check "two rolls while requests flow" test "$ROLLS" -eq 0
check "40 requests during the rolls, all 200" test "$(grep -c '^200$' "$T_WORK/during.codes")" -eq 40

expect 0 "kasa log summary" "$KASA" log summary "$LAB"/cas*/auth.log --json
check "the summary counts Kerberos on the members" python3 -c '
import json, sys
s = json.load(sys.stdin)
k = sum(b["kerberos"] for b in s); n = sum(b["ntlm"] for b in s)
sys.exit(0 if k >= 49 and n == 7 else 1)' <<EOF2
$T_OUT
EOF2

# Malformed Authorization headers: 400 or 401 and a log line, never a crash.
# cas1's kasa-httpd directly, by the array's name (so Kerberos asks for HTTP/outlook...).
HPORT=$(jq1 'd["members"][0]["http"]["port"]')
H1="http://$ARRAY:$HPORT/whoami"
R1="$ARRAY:$HPORT:127.0.0.11"
code() { curl -s -o /dev/null -w '%{http_code}' --resolve "$R1" -H "Authorization: $1" "$H1"; }
before=$(wc -l <"$LAB/cas1/auth.log")
check "not base64: 400" test "$(code 'Negotiate !!!not-base64!!!')" = 400
check "truncated SPNEGO: 401" test "$(code 'Negotiate YEgGBisGAQUFAqA+MDyg')" = 401
check "a wrong mechanism OID: 401" test "$(code 'Negotiate YA0GCSqGSIb3EgECAgEA')" = 401
check "Basic is not accepted: 401" test "$(code 'Basic YWxpY2U6eA==')" = 401
check "each got a log line" test "$(wc -l <"$LAB/cas1/auth.log")" -eq $((before + 4))
big=$(head -c 70000 /dev/zero | tr '\0' 'A')
c=$(code "Negotiate $big")
check "a huge header is refused ($c)" sh -c "case $c in 400|401|413|431) exit 0;; *) exit 1;; esac"
check "a 64,000-character token (Windows' largest) passes the header parser to GSS: 401" \
	test "$(code "Negotiate $(head -c 64000 /dev/zero | tr '\0' A)")" = 401
check "and GSS-API's reason is in the log" sh -c "tail -1 '$LAB/cas1/auth.log' | grep -q 'Invalid token'"
expect 0 "cas1 still serves" curl -s --negotiate -u : --resolve "$R1" "$H1"

# A replayed token: the same header twice to the same member.
curl -s -v --negotiate -u : --resolve "$R1" "$H1" 2>"$T_WORK/v.err" >/dev/null
TOKEN=$(sed -n 's/^> Authorization: \(Negotiate .*\)\r*$/\1/p' "$T_WORK/v.err" | tr -d '\r' | head -1)
check "captured a Kerberos token from curl" test -n "$TOKEN"
check "the replayed token is refused" test "$(code "$TOKEN")" = 401
expect 0 "inspect the Kerberos token" "$KASA" inspect --json "Authorization: $TOKEN"
check "a Kerberos AP-REQ inside SPNEGO" test "$(json inner)" = Kerberos
check "for HTTP/outlook.proseware.lab" test "$(json kerberos.service)" = HTTP/outlook.proseware.lab
check "in PROSEWARE.LAB" test "$(json kerberos.realm)" = PROSEWARE.LAB
check "at the kvno of alice's ticket (kvno agrees)" test "kvno = $(json kerberos.kvno)" = "$(kvno HTTP/outlook.proseware.lab | sed 's/.*: //')"
check "with AES-256" test "$(json kerberos.enctype)" = aes256-cts-hmac-sha1-96
bad=0
for v in "" "Negotiate" "Negotiate !!!" "Basic YWxpY2U6eA==" "Negotiate YA==" "Negotiate YAA=" \
	"Negotiate YAEA" "Negotiate YA0GCSqGSIb3EgECAgEA" "Negotiate YAoGCCqGSIb3DQEBAQ==" \
	"Negotiate oQQwAqAA" "Negotiate oAA=" "Negotiate MAA=" "Negotiate AAAAAAAA" \
	"Negotiate TlRMTVNTUAAJAAAA" "Negotiate TlRMTVNTUAADAAAA" "Negotiate TlRMTVNTUAACAAAAAAAAAAAAAAA=" \
	"Negotiate YIIFAAYGKwYBBQUC" "Negotiate YIAGBisGAQUFAqAAAAA=" "$(printf 'Negotiate YE\ngG')" \
	"Negotiate $(head -c 3000 /dev/urandom | base64 -w0)" "$(head -c 70000 /dev/zero | tr '\0' A)"; do
	"$KASA" inspect "$v" >"$T_WORK/i.out" 2>"$T_WORK/i.err"
	st=$?
	lines=$(wc -l <"$T_WORK/i.err")
	[ "$st" -eq 2 ] && [ "$lines" -eq 1 ] || { bad=$((bad + 1)); echo "# inspect accepted or misreported: $(printf '%.40s' "$v") ($st, $lines lines)"; }
done
check "21 malformed values: each refused with exit 2 and one line" test "$bad" -eq 0
tail -1 "$LAB/cas1/auth.log" >"$T_WORK/replay.line"
check "and the log says it is a replay" grep -qi 'replay' "$T_WORK/replay.line"

# Each member is a machine of its own, with its own replay cache (KRB5RCACHEDIR): the token
# cas1 refused as a replay is accepted by cas2. This is today's documented limitation
# (kasa-httpd(8), REPLAY CACHE); a cache shared by the array is to come (issue 14).
HPORT2=$(jq1 'd["members"][1]["http"]["port"]')
check "the same token replayed to cas2 is accepted there (the limitation)" test "$(curl -s -o /dev/null \
	-w '%{http_code}' --resolve "$ARRAY:$HPORT2:127.0.0.12" -H "Authorization: $TOKEN" \
	"http://$ARRAY:$HPORT2/whoami")" = 200
check "each member keeps its replay cache in its own directory" \
	sh -c "ls '$LAB'/cas1/*.rcache2 '$LAB'/cas2/*.rcache2 >/dev/null"

# Log injection: a principal with a comma, and a header with a newline. (MIT's KDC will not
# issue service tickets to a principal holding a newline; tests/unit/test_authlog.c
# covers those bytes in every field.)
kadmin_local 'addprinc -randkey ev,il' >/dev/null
kadmin_local "ktadd -k $T_WORK/evil.keytab ev,il" >/dev/null
check "made the hostile principal" test -s "$T_WORK/evil.keytab"
KRB5CCNAME="FILE:$T_WORK/evil.cc" kinit -k -t "$T_WORK/evil.keytab" 'ev,il' 2>/dev/null
KRB5CCNAME="FILE:$T_WORK/evil.cc" curl -s --negotiate -u : --resolve "$R1" "$H1" >/dev/null
check "the hostile principal authenticated and was logged, quoted" grep -q '"ev,il@PROSEWARE.LAB"' "$LAB/cas1/auth.log"
printf 'Negotiate YEgG\r\nX-Forged: "2026-01-01T00:00:00Z","cas1"' >"$T_WORK/forge"
check "a header carrying a CR LF is refused" sh -c "case \$(curl -s -o /dev/null -w '%{http_code}' --resolve '$R1' -H \"Authorization: \$(cat '$T_WORK/forge')\" '$H1') in 400|401) exit 0;; *) exit 1;; esac"
check "every line of every auth log starts with a quoted time: nothing forged" \
	sh -c "! cat '$LAB'/cas*/auth.log | grep -qv '^\"20[0-9][0-9]-'"
expect 0 "and every line parses" "$KASA" log summary "$LAB"/cas*/auth.log
check "with no skipped line" test -z "$T_ERR"

# The auth_request mode (for nginx or HAProxy in front of any backend), and TLS.
: "${KASA_HTTPD:?}"
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
KT1=$(jq1 'd["members"][0]["managed_keytab"]')
XP=$(free_port 127.0.0.11)
"$KASA_HTTPD" --keytab "$KT1" --member cas1-auth --listen 127.0.0.11 --port "$XP" --auth-request \
	--auth-log "$T_WORK/x.log" --log "$T_WORK/x.err" &
XPID=$!
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$ARRAY" -keyout "$T_WORK/tls.key" \
	-out "$T_WORK/tls.crt" >/dev/null 2>&1
TP=$(free_port 127.0.0.11)
"$KASA_HTTPD" --keytab "$KT1" --member cas1-tls --listen 127.0.0.11 --port "$TP" \
	--tls-cert "$T_WORK/tls.crt" --tls-key "$T_WORK/tls.key" --auth-log "$T_WORK/t.log" --log "$T_WORK/t.err" &
TPID=$!
sleep 0.5
printf '[kasa-httpd]\n\tkeytab = %s\n\tmember = cas1-conf\n\tlisten = 127.0.0.11\n\tauth_request = true\n\tauth_log = %s\n' "$KT1" "$T_WORK/c.log" >"$T_WORK/httpd.conf"
CP=$(free_port 127.0.0.11)
"$KASA_HTTPD" --config "$T_WORK/httpd.conf" --port "$CP" --log "$T_WORK/c.err" &
CPID=$!
expect 0 "auth_request without credentials" curl -s -o /dev/null -D - "http://127.0.0.11:$XP/any/path"
out_has "401" "is 401"
out_has "WWW-Authenticate: Negotiate" "with the Negotiate challenge"
expect 0 "auth_request with Kerberos" curl -s -o /dev/null -D - --negotiate -u : --resolve "$ARRAY:$XP:127.0.0.11" "http://$ARRAY:$XP/any/path"
out_has "200" "is 200"
out_has "X-Remote-User: alice@PROSEWARE.LAB" "names the user"
out_has "X-Auth-Method: Kerberos" "and the mechanism"
expect 0 "HTTPS with Kerberos" curl -s -k --negotiate -u : --resolve "$ARRAY:$TP:127.0.0.11" "https://$ARRAY:$TP/whoami"
check "over TLS, alice by Kerberos" test "$T_OUT" = "alice@PROSEWARE.LAB Kerberos"
expect 0 "kasa-httpd from --config (auth_request, listen, member)" curl -s -o /dev/null -D - --negotiate -u : --resolve "$ARRAY:$CP:127.0.0.11" "http://$ARRAY:$CP/x"
out_has "X-Auth-Method: Kerberos" "authenticates"
check "and logs as the member named in the file" grep -q '"cas1-conf"' "$T_WORK/c.log"
kill "$XPID" "$TPID" "$CPID"
wait "$XPID" "$TPID" "$CPID" 2>/dev/null
expect 2 "kasa-httpd with a certificate and no key" "$KASA_HTTPD" --keytab "$KT1" --tls-cert "$T_WORK/tls.crt"
expect 2 "kasa-httpd without --keytab" "$KASA_HTTPD"
expect 2 "kasa-httpd with an empty --keytab" "$KASA_HTTPD" --keytab ''
err_has "is not a file name" "says why"

expect 2 "kasa log without summary" "$KASA" log
expect 1 "kasa log summary of a missing file" "$KASA" log summary "$T_WORK/none.log"

done_testing
