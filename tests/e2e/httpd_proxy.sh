#!/bin/sh
# The real client behind the balancer (issue 10): the lab's HAProxy sends a PROXY v2
# header, and each member's auth log names the client's own address (clients bind
# 127.0.0.3 and 127.0.0.4), not the balancer's. Then the hostile side: a PROXY header
# sent straight to a member from anyone but the balancer is a bad request (400) and its
# address is logged nowhere; from the balancer's address, no header, a malformed one, or
# one that never ends is closed, without holding up the others; and over TLS the
# header comes before the ClientHello.
. "$(dirname "$0")/lib.sh"

: "${KASA_HTTPD:?}"
ARRAY=outlook.proseware.lab
TPID=
stop_tls() {
	[ -z "$TPID" ] || { kill "$TPID" 2>/dev/null; wait "$TPID" 2>/dev/null; }
	cleanup
}
trap stop_tls EXIT

lab_up --members 3
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
jq1() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(" + sys.argv[2] + ")")' "$T_WORK/lab.json" "$1"; }
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
BPORT=$(jq1 'd["balancer"]["port"]')
HPORT=$(jq1 'd["members"][0]["http"]["port"]')
URL="http://$ARRAY:$BPORT/ews/exchange.asmx"
RESOLVE="$ARRAY:$BPORT:127.0.0.10"
logs() { cat "$LAB"/cas*/auth.log 2>/dev/null; }
# okfrom ADDR: successful auth log lines, on any member, whose client is ADDR
okfrom() { logs | grep -F "\",\"$1\",\"" | grep -c '"ok"'; }

# raw SRC PORT BYTES [tls]: connect from SRC to cas1 (127.0.0.11), send BYTES (Python
# escapes: \r\n, \x00), then a request for /whoami (over TLS when asked); print the
# response's status line, or "closed" when the member closed without one.
cat >"$T_WORK/raw.py" <<'EOF'
import socket, ssl, sys
src, port, head = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode().decode('unicode_escape').encode('latin1')
tls = len(sys.argv) > 4
s = socket.create_connection(('127.0.0.11', port), timeout=10, source_address=(src, 0))
req = b'GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
out = b''
try:
    s.sendall(head)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    s.sendall(req)
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
except (OSError, ssl.SSLError):
    pass
line = out.split(b'\r\n')[0].decode('latin1')
print(line if line else 'closed')
EOF
raw() { python3 "$T_WORK/raw.py" "$@"; }

expect 0 "kinit as alice" kinit -k -t "$LAB/alice.keytab" alice
check "the lab's HAProxy sends PROXY v2 from its own address" \
	grep -q 'send-proxy-v2' "$LAB/haproxy.cfg"

# Through the balancer from two client addresses: the auth logs name them.
for src in 127.0.0.3 127.0.0.4; do
	for _ in 1 2 3; do
		curl -s -o /dev/null -w '%{http_code}\n' --interface "$src" --negotiate -u : \
			--resolve "$RESOLVE" "$URL"
	done
done >"$T_WORK/codes"
check "six requests through the balancer from 127.0.0.3 and .4, all 200" \
	test "$(grep -c '^200$' "$T_WORK/codes")" -eq 6
check "the auth logs name 127.0.0.3 three times" test "$(okfrom 127.0.0.3)" -eq 3
check "and 127.0.0.4 three times" test "$(okfrom 127.0.0.4)" -eq 3
check "and never the balancer's 127.0.0.10" test "$(logs | grep -cF '","127.0.0.10","')" -eq 0
check "the requests were spread over the members" \
	test "$(grep -lF '"127.0.0.3"' "$LAB"/cas*/auth.log | wc -l)" -ge 2
expect 0 "a client straight to a member (127.0.0.1) is served as itself" \
	curl -s -o /dev/null -w '%{http_code}' --negotiate -u : --resolve "$ARRAY:$HPORT:127.0.0.11" \
	"http://$ARRAY:$HPORT/whoami"
check "with 200" test "$T_OUT" = 200
check "and logged as 127.0.0.1" test "$(okfrom 127.0.0.1)" -ge 1

# A PROXY header from anyone but the balancer: bad HTTP, and the forged address is
# nowhere. (curl --haproxy-protocol sends one too.)
run raw 127.0.0.5 "$HPORT" 'PROXY TCP4 192.0.2.66 127.0.0.11 5555 80\r\n'
check "a PROXY v1 header from 127.0.0.5 straight to cas1: 400" test "$T_OUT" = "HTTP/1.1 400 Bad Request"
run raw 127.0.0.1 "$HPORT" '\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x43\x7f\x00\x00\x0b\x15\xb3\x00\x50'
# (libmicrohttpd closes at the NUL in v2's signature, or answers 400: refused either way.)
check "a PROXY v2 header from 127.0.0.1: refused ($T_OUT)" \
	sh -c "case '$T_OUT' in 'HTTP/1.1 400 Bad Request' | closed) exit 0 ;; *) exit 1 ;; esac"
expect 0 "curl --haproxy-protocol from 127.0.0.5" curl -s -o /dev/null -w '%{http_code}' \
	--haproxy-protocol --interface 127.0.0.5 "http://127.0.0.11:$HPORT/whoami"
check "is 400 too" test "$T_OUT" = 400
check "no auth log names the forged 192.0.2.66 or 192.0.2.67" \
	test "$(logs | grep -c '192\.0\.2\.6[67]')" -eq 0

# From the balancer's address: the header is required, whole, valid, and on time.
run raw 127.0.0.10 "$HPORT" ''
check "a request from 127.0.0.10 without a PROXY header: closed" test "$T_OUT" = closed
run raw 127.0.0.10 "$HPORT" 'PROXY TCP4 127.0.0.3 127.0.0.11 99999 80\r\n'
check "a PROXY header with port 99999 from 127.0.0.10: closed" test "$T_OUT" = closed
run raw 127.0.0.10 "$HPORT" '\r\n\r\n\x00\r\nQUIT\n\x21\x12\x00\x0c\x7f\x00\x00\x03\x7f\x00\x00\x0b\x15\xb3\x00\x50'
check "a PROXY v2 header for UDP from 127.0.0.10: closed" test "$T_OUT" = closed
check "cas1's log says why" \
	grep -q 'PROXY protocol: closed the connection of 127.0.0.10 .*ports "99999"' "$LAB/cas1/httpd.log"
run raw 127.0.0.10 "$HPORT" 'PROXY TCP4 127.0.0.7 127.0.0.11 5555 80\r\n'
check "a valid PROXY v1 header from 127.0.0.10 reaches HTTP: 401" test "$T_OUT" = "HTTP/1.1 401 Unauthorized"
# A header that never ends holds no one up, and is closed at its deadline.
python3 - "$HPORT" >"$T_WORK/slow" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
slow = socket.create_connection(('127.0.0.11', port), source_address=('127.0.0.10', 0))
slow.sendall(b'PROXY TCP4 127.0.0.8 ')
t0 = time.monotonic()
fast = socket.create_connection(('127.0.0.11', port), source_address=('127.0.0.10', 0))
fast.sendall(b'PROXY TCP4 127.0.0.9 127.0.0.11 5555 80\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n')
print('fast', fast.recv(4096).split(b'\r\n')[0].decode(), round(time.monotonic() - t0, 1))
slow.settimeout(10)
try:
    gone = slow.recv(1) == b''
except OSError:
    gone = True
print('slow', 'closed' if gone else 'open', round(time.monotonic() - t0))
EOF
check "while one balancer connection trickles its header, another is served at once" \
	grep -Eq '^fast HTTP/1.1 401 Unauthorized 0\.[0-9]$' "$T_WORK/slow"
check "and the trickler is closed after about 3 s" grep -Eq '^slow closed [345]$' "$T_WORK/slow"
expect 0 "cas1 still serves through the balancer" \
	curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.3 --negotiate -u : --resolve "$RESOLVE" "$URL"
check "with 200" test "$T_OUT" = 200
check "cas1 closed those four, and nothing else (HAProxy's health checks pass)" \
	test "$(grep -c 'PROXY protocol: closed' "$LAB/cas1/httpd.log")" -eq 4

# Over TLS: the header, then the ClientHello.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$ARRAY" -keyout "$T_WORK/tls.key" \
	-out "$T_WORK/tls.crt" >/dev/null 2>&1
TP=$(free_port 127.0.0.11)
"$KASA_HTTPD" --keytab "$(jq1 'd["members"][0]["managed_keytab"]')" --member cas1-tls \
	--listen 127.0.0.11 --port "$TP" --proxy-from 127.0.0.10,::1 --tls-cert "$T_WORK/tls.crt" \
	--tls-key "$T_WORK/tls.key" --auth-log "$T_WORK/t.log" --log "$T_WORK/t.err" &
TPID=$!
i=0
until curl -s -k -o /dev/null "https://127.0.0.11:$TP/" || [ $i -ge 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
run raw 127.0.0.10 "$TP" '\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x7f\x00\x00\x07\x7f\x00\x00\x0b\x15\xb3\x00\x50' tls
check "HTTPS behind a PROXY v2 header from 127.0.0.10: 401" test "$T_OUT" = "HTTP/1.1 401 Unauthorized"
check "logged as 127.0.0.7, the client it names" grep -qF '"cas1-tls","127.0.0.7","' "$T_WORK/t.log"
expect 0 "HTTPS with Kerberos behind curl's PROXY v1 header from 127.0.0.10" \
	curl -s -k --haproxy-protocol --interface 127.0.0.10 --negotiate -u : \
	--resolve "$ARRAY:$TP:127.0.0.11" "https://$ARRAY:$TP/whoami"
check "alice, by NTLM or Kerberos" sh -c "case '$T_OUT' in *alice*) exit 0;; *) exit 1;; esac"
check "logged as the client its header names" grep -qF '"cas1-tls","127.0.0.10","' "$T_WORK/t.log"
expect 0 "HTTPS with a PROXY header from 127.0.0.5: no TLS" \
	sh -c "! curl -s -k --haproxy-protocol --interface 127.0.0.5 'https://127.0.0.11:$TP/whoami'"
expect 2 "--proxy-from with a name, not an address" \
	"$KASA_HTTPD" --keytab "$T_WORK/none" --port "$TP" --proxy-from balancer.example
err_has "balancer.example is not an IPv4 or IPv6 address" "says which entry is wrong"

done_testing
