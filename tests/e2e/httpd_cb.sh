#!/bin/sh
# Channel bindings over TLS (Extended Protection, issue 10): a member's kasa-httpd with
# --channel-binding off, accept and require, and a python3-gssapi client that binds its
# Kerberos or NTLM (gss-ntlmssp) token to the server's certificate (RFC 5929
# tls-server-end-point), to another certificate, or to nothing. And a failed TLS handshake
# is said in --log, not on stderr.
. "$(dirname "$0")/lib.sh"

: "${KASA_HTTPD:?}"
HERE=$(dirname "$0")
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
PIDS=
stop_httpd() {
	for p in $PIDS; do
		kill "$p" 2>/dev/null
	done
	for p in $PIDS; do
		wait "$p" 2>/dev/null
	done
	cleanup
}
trap stop_httpd EXIT

gssapi_python # the client needs python3-gssapi

lab_up --members 1
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
jq1() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(" + sys.argv[2] + ")")' "$T_WORK/lab.json" "$1"; }
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
ADDR=$(jq1 'd["members"][0]["address"]')
KT1=$(jq1 'd["members"][0]["managed_keytab"]')

# cas1 holds the array's keys, as in the seed.
expect 0 "create the ASA" "$KASA" account create "$ASA" --computer
expect 0 "give it HTTP/$ARRAY" "$KASA" spn add "HTTP/$ARRAY" "$ASA"
expect 0 "create the array" "$KASA" array create $ARRAY --asa "$ASA"
expect 0 "add cas1" "$KASA" array add-member $ARRAY "cas1.proseware.lab:$(jq1 'd["members"][0]["port"]')" --address "$ADDR"
expect 0 "roll" "$KASA" roll $ARRAY
expect 0 "kinit as alice" kinit -k -t "$LAB/alice.keytab" alice

# The server's certificate, another one (a token bound to it must not pass), and one
# signed with SHA-384 (its binding hashes with SHA-384, not SHA-256).
cert() {
	name=$1
	shift
	openssl req -x509 -nodes -days 1 -subj "/CN=$ARRAY" -keyout "$T_WORK/$name.key" \
		-out "$T_WORK/$name.crt" "$@" >/dev/null 2>&1
}
cert tls -newkey rsa:2048
cert other -newkey rsa:2048
cert p384 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -sha384
check "made three certificates" test -s "$T_WORK/tls.crt" -a -s "$T_WORK/other.crt" -a -s "$T_WORK/p384.crt"

# start NAME CERT ARGS...: kasa-httpd over TLS as member cas1-NAME; its port in PORT.
start() {
	name=$1 crt=$2
	shift 2
	port=$(free_port "$ADDR")
	"$KASA_HTTPD" --keytab "$KT1" --member "cas1-$name" --listen "$ADDR" --port "$port" \
		--tls-cert "$T_WORK/$crt.crt" --tls-key "$T_WORK/$crt.key" --auth-log "$T_WORK/$name.log" \
		--log "$T_WORK/$name.err" --pidfile "$T_WORK/$name.pid" "$@" 2>"$T_WORK/$name.stderr" &
	PIDS="$PIDS $!"
	PORT=$port
	for _ in $(seq 50); do
		[ -s "$T_WORK/$name.pid" ] && break
		sleep 0.1
	done
	check "kasa-httpd cas1-$name listens${*:+ ($*)}" test -s "$T_WORK/$name.pid"
}
# code_is DESCRIPTION CODE PORT ARGS...: cbclient gets HTTP status CODE; for 200, as alice
# by Kerberos (by NTLM with ntlm_is).
code_is() {
	desc=$1 want=$2 port=$3
	shift 3
	"$PY" "$HERE/cbclient.py" "$ADDR" "$port" --name $ARRAY "$@" >"$T_WORK/cb.out" 2>"$T_WORK/cb.err"
	st=$?
	got=$(sed -n '1s/^HTTP\/1\.[01] \([0-9]*\).*/\1/p' "$T_WORK/cb.out")
	body=$(sed 1d "$T_WORK/cb.out")
	if [ "$st" -eq 0 ] && [ "$got" = "$want" ] &&
		{ [ "$want" != 200 ] || [ "$body" = "${WHO:-alice@PROSEWARE.LAB Kerberos}" ]; }; then
		ok "$desc"
	else
		not_ok "$desc" "cbclient $* exited $st; status '$got', expected $want" \
			"stdout: $(cat "$T_WORK/cb.out")" "stderr: $(cat "$T_WORK/cb.err")"
	fi
}
# ntlm_is DESCRIPTION CODE PORT ARGS...: the same with gss-ntlmssp's NTLM (alice's password
# from the lab's NTLM_USER_FILE, which the members read too) under the NTLM scheme.
ntlm_is() {
	WHO='PROSEWARE\alice NTLM'
	code_is "$@" --mech ntlm --user 'PROSEWARE\alice'
	WHO=
}
WHO=

start accept tls --channel-binding accept
ACCEPT=$PORT
start require tls --channel-binding require
REQUIRE=$PORT
start off tls --channel-binding off
OFF=$PORT
start p384 p384 --channel-binding require
P384=$PORT
printf '[kasa-httpd]\n\tchannel_binding = require\n' >"$T_WORK/conf"
start conf tls --config "$T_WORK/conf"
CONF=$PORT
start default tls
DEFAULT=$PORT

# accept (IIS's "Accept"): a binding is checked when the client sends one.
code_is "accept: bound to the server's certificate: 200" 200 "$ACCEPT"
code_is "accept: no bindings: 200" 200 "$ACCEPT" --no-bindings
code_is "accept: bound to another certificate: 401" 401 "$ACCEPT" --bind-to-cert "$T_WORK/other.crt"
code_is "accept: a raw Kerberos token (no SPNEGO), bound: 200" 200 "$ACCEPT" --mech krb5
check "accept: the refusal is in the auth log" grep -q '"cas1-accept".*"failed"' "$T_WORK/accept.log"

# require (IIS's "Required"): only a token bound to this TLS channel.
code_is "require: bound to the server's certificate: 200" 200 "$REQUIRE"
code_is "require: no bindings: 401" 401 "$REQUIRE" --no-bindings
check "require: the log line says the token carried no channel binding" grep -qi 'channel binding' "$T_WORK/require.log"
code_is "require: bound to another certificate: 401" 401 "$REQUIRE" --bind-to-cert "$T_WORK/other.crt"
code_is "require: a raw Kerberos token (no SPNEGO), bound: 200" 200 "$REQUIRE" --mech krb5
code_is "require: a raw Kerberos token without bindings: 401" 401 "$REQUIRE" --mech krb5 --no-bindings
check "require: two successes and three refusals logged" \
	test "$(grep -c '"ok"' "$T_WORK/require.log")" -eq 2 -a "$(grep -c '"failed"' "$T_WORK/require.log")" -eq 3

# off: bindings are not checked at all.
code_is "off: no bindings: 200" 200 "$OFF" --no-bindings
code_is "off: bound to the server's certificate: 200" 200 "$OFF"
code_is "off: bound to another certificate: 200 (not checked)" 200 "$OFF" --bind-to-cert "$T_WORK/other.crt"

# The binding hashes the certificate with its signature's hash when that is not SHA-256.
code_is "require, ECDSA P-384 with SHA-384 certificate: bound: 200" 200 "$P384"
code_is "require, SHA-384 certificate: bound to another certificate: 401" 401 "$P384" --bind-to-cert "$T_WORK/tls.crt"

# channel_binding in the config file; accept by default.
code_is "channel_binding = require from --config: bound: 200" 200 "$CONF"
code_is "channel_binding = require from --config: no bindings: 401" 401 "$CONF" --no-bindings
code_is "default (accept): no bindings: 200" 200 "$DEFAULT" --no-bindings
code_is "default (accept): bound to another certificate: 401" 401 "$DEFAULT" --bind-to-cert "$T_WORK/other.crt"

# NTLM over TLS: gss-ntlmssp binds its AUTHENTICATE to the channel too (MsvAvChannelBindings,
# MS-NLMP 2.2.2.1), and kasa-httpd hands it the same binding as Kerberos. It refuses one
# that does not match with the codes it gives a wrong MIC, so the log must not call it an
# unknown user, nor the metrics an NTLM refusal.
MP=$(free_port 127.0.0.1)
start ntlm tls --channel-binding accept --metrics-port "$MP"
NTLM=$PORT
ntlm_is "NTLM, accept: bound to the server's certificate: 200" 200 "$NTLM"
check "the 401 before it carried the CHALLENGE, on the same connection" grep -q '^leg: 401 NTLM TlRMTVNTUAACAAAA' "$T_WORK/cb.err"
ntlm_is "NTLM, accept: no bindings: 200" 200 "$NTLM" --no-bindings
ntlm_is "NTLM, accept: bound to another certificate: 401" 401 "$NTLM" --bind-to-cert "$T_WORK/other.crt"
check "NTLM, accept: logged as a channel binding mismatch, for PROSEWARE\\alice" \
	grep -q '"PROSEWARE\\\\alice",.*"NTLM",.*"failed","NTLM: channel binding mismatch' "$T_WORK/ntlm.log"
check "NTLM, accept: two successes and one refusal logged" \
	test "$(grep -c '"ok"' "$T_WORK/ntlm.log")" -eq 2 -a "$(grep -c '"failed"' "$T_WORK/ntlm.log")" -eq 1
curl -s "http://127.0.0.1:$MP/metrics" >"$T_WORK/ntlm.metrics"
check "NTLM, accept: counted as channel_binding, not ntlm_refused" sh -c "
	grep -qx 'kasa_httpd_authentication_failures_total{reason=\"channel_binding\"} 1' '$T_WORK/ntlm.metrics' &&
	! grep -q 'kasa_httpd_authentication_failures_total{reason=\"ntlm_refused\"} [1-9]' '$T_WORK/ntlm.metrics'"
: >"$T_WORK/require.log"
ntlm_is "NTLM, require: bound to the server's certificate: 200" 200 "$REQUIRE"
ntlm_is "NTLM, require: no bindings: 401" 401 "$REQUIRE" --no-bindings
check "NTLM, require: logged as carrying no channel binding" \
	grep -q '"NTLM",.*"failed","no channel binding: the client did not bind' "$T_WORK/require.log"
ntlm_is "NTLM, require: bound to another certificate: 401" 401 "$REQUIRE" --bind-to-cert "$T_WORK/other.crt"
check "NTLM, require: logged as a channel binding mismatch" \
	grep -q '"NTLM",.*"failed","NTLM: channel binding mismatch' "$T_WORK/require.log"
check "NTLM, require: one success and two refusals logged" \
	test "$(grep -c '"ok"' "$T_WORK/require.log")" -eq 1 -a "$(grep -c '"failed"' "$T_WORK/require.log")" -eq 2
ntlm_is "NTLM, off: bound to another certificate: 200 (not checked)" 200 "$OFF" --bind-to-cert "$T_WORK/other.crt"

# A failed TLS handshake (plain HTTP to the TLS port, a ClientHello cut short) is said in
# the message log (--log), libmicrohttpd's and GnuTLS's words, and nothing on stderr.
lines=$(wc -l <"$T_WORK/accept.err")
curl -s -o /dev/null --max-time 5 "http://$ADDR:$ACCEPT/whoami"
python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(bytes.fromhex("16030100050100000100"))  # a ClientHello of one byte
try:
    s.recv(100)
except OSError:
    pass' "$ADDR" "$ACCEPT"
check "the failed handshakes are in --log" eventually sh -c "
	tail -n +$((lines + 1)) '$T_WORK/accept.err' | grep -q 'GnuTLS\|handshake'"
check "a GnuTLS line among them" sh -c "tail -n +$((lines + 1)) '$T_WORK/accept.err' | grep -q 'GnuTLS: '"
check "nothing on stderr from any kasa-httpd with --log" sh -c "cat '$T_WORK'/*.stderr | wc -c | grep -qx 0"

expect 2 "--channel-binding with an unknown level" "$KASA_HTTPD" --keytab "$KT1" --channel-binding sometimes
err_has "sometimes" "names the bad value"

done_testing
