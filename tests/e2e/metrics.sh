#!/bin/sh
# kasa-httpd's Prometheus metrics (issue 13): a kasa-httpd of our own with
# --metrics-listen/--metrics-port, scraped before and after each kind of attempt (a Kerberos
# login, a replay, an NTLM login, a wrong NTLM password, no token, a malformed header): each
# counter moves by exactly what the attempt should move it by, and nothing else moves.
# Every scrape passes promtool check metrics (which is shown to fail on a broken line);
# the keytab's kvno is klist's, and follows a new key; other paths are 404; bad settings
# are refused. Then the alerting rules in packaging/prometheus: promtool check rules and
# promtool test rules.
. "$(dirname "$0")/lib.sh"

: "${KASA_HTTPD:?}"
PROM="$(cd "$(dirname "$0")/../../packaging/prometheus" && pwd)"
NAME=metrics.proseware.lab
ADDR=127.0.0.1
SPID=
stop_all() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
	cleanup
}
trap stop_all EXIT
if ! command -v promtool >/dev/null 2>&1; then
	echo "1..0 # SKIP promtool is not installed (Debian's prometheus package; scripts/install-deps)"
	exit 0
fi
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }

# The rules first: they need no lab.
expect 0 "promtool check rules kasa.rules.yml" promtool check rules "$PROM/kasa.rules.yml"
expect 0 "promtool test rules kasa.rules.test.yml (STALE fires, healthy fires none, NTLM share fires)" \
	promtool test rules "$PROM/kasa.rules.test.yml"
# The Grafana dashboard: JSON, every query valid PromQL (checked by promtool as recording
# rules) and naming only metrics kasa-httpd serves.
GRAFANA="$(cd "$(dirname "$0")/../../packaging/grafana" && pwd)"
SRC="$(cd "$(dirname "$0")/../../daemons/kasa-httpd" && pwd)"
expect 0 "the dashboard is JSON with panels, each query a recording rule" python3 -c '
import json, re, sys
d = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
assert len(exprs) >= 6, exprs
served = set(re.findall(r"\"(kasa_httpd_[a-z_]+)\"", open(sys.argv[2]).read()))
for e in exprs:
    for m in re.findall(r"kasa_httpd_[a-z_]+", e):
        assert m in served, m
print("groups:\n  - name: dashboard\n    rules:")
for i, e in enumerate(exprs):
    print("      - record: kasa:dashboard:%d\n        expr: %s" % (i, json.dumps(e)))
' "$GRAFANA/kasa-dashboard.json" "$SRC/metrics.c"
printf '%s\n' "$T_OUT" >"$T_WORK/dashboard.rules.yml"
expect 0 "promtool check rules accepts every dashboard query" promtool check rules "$T_WORK/dashboard.rules.yml"
printf 'groups:\n  - name: x\n    rules:\n      - record: kasa:x\n        expr: "sum(rate(kasa_httpd_x[5m]) by"\n' >"$T_WORK/bad.rules.yml"
check "and refuses a query that is not PromQL (so that check can fail)" \
	sh -c "! promtool check rules '$T_WORK/bad.rules.yml' >/dev/null 2>&1"
printf '# TYPE kasa_httpd_x_total counter\nkasa_httpd_x_total{a="b"} one\n' >"$T_WORK/broken.prom"
check "promtool check metrics fails on a broken exposition (so the checks below can fail)" \
	sh -c "! promtool check metrics <'$T_WORK/broken.prom' >/dev/null 2>&1"

# Bad settings: exit 2 and one line.
for bad in "--metrics-port x" "--metrics-port 0" "--metrics-port 65536" "--metrics-port -1" \
	"--metrics-port 80x" "--metrics-listen localhost --metrics-port 9100" "--metrics-listen 127.0.0.1"; do
	# shellcheck disable=SC2086
	run "$KASA_HTTPD" --keytab "$T_WORK/none.keytab" $bad
	check "$bad: exit 2 and one line" sh -c "[ $T_STATUS -eq 2 ] && [ \$(printf '%s\n' \"\$1\" | wc -l) -eq 1 ] &&
		case \"\$1\" in 'kasa-httpd: '*) true;; *) false;; esac" - "$T_ERR"
done
printf '[kasa-httpd]\n\tkeytab = x\n\tmetrics_port = many\n' >"$T_WORK/bad.conf"
expect 1 "metrics_port = many in the config is refused" "$KASA_HTTPD" --config "$T_WORK/bad.conf"
err_has "bad.conf: metrics_port = many is not a number" "naming the file and the key"

lab_up --members 1
expect 0 "kinit as alice" kinit -k -t "$LAB/alice.keytab" alice
ALICE_NTLM=$(cut -d: -f3 "$LAB/ntlm.users")
kadmin_local "addprinc -randkey HTTP/$NAME" >/dev/null
kadmin_local "ktadd -k $T_WORK/http.keytab HTTP/$NAME" >/dev/null
printf 'PROSEWARE:alice:%s\n' "$ALICE_NTLM" >"$T_WORK/server.users"
chmod 600 "$T_WORK/server.users"
HP=$(free_port $ADDR)
MP=$(free_port $ADDR)
T0=$(date +%s)
NTLM_USER_FILE="$T_WORK/server.users" "$KASA_HTTPD" --keytab "$T_WORK/http.keytab" --member met \
	--listen $ADDR --port "$HP" --metrics-listen $ADDR --metrics-port "$MP" --threads 4 \
	--auth-log "$T_WORK/a.log" --log "$T_WORK/a.err" --pidfile "$T_WORK/a.pid" &
SPID=$!
for _ in $(seq 50); do [ -s "$T_WORK/a.pid" ] && break; sleep 0.1; done
check "our kasa-httpd listens on $ADDR:$HP, metrics on $MP" test -s "$T_WORK/a.pid"
T1=$(date +%s)
U="http://$NAME:$HP/whoami"
R="$NAME:$HP:$ADDR"
M="http://$ADDR:$MP/metrics"

N=0
# scrape: the next scrape into $T_WORK/s$N; it must parse with promtool.
scrape() {
	N=$((N + 1))
	curl -s -f -D "$T_WORK/h$N" -o "$T_WORK/s$N" --max-time 10 "$M" &&
		promtool check metrics <"$T_WORK/s$N" >"$T_WORK/p$N" 2>&1
}
# moved SERIES=N...: from the scrape before the last to the last, each counter named moved
# by exactly N, every other counter by 0.
moved() {
	python3 - "$T_WORK/s$((N - 1))" "$T_WORK/s$N" "$@" <<'EOF'
import sys
def load(path):
    d = {}
    for line in open(path):
        if line.strip() and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            d[k] = float(v)
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
want = dict((w.rsplit("=", 1)[0], float(w.rsplit("=", 1)[1])) for w in sys.argv[3:])
bad = []
for k in sorted(set(a) | set(b)):
    if k.split("{")[0].endswith("_total"):
        d = b.get(k, 0) - a.get(k, 0)
        if d != want.pop(k, 0):
            bad.append("%s moved by %g" % (k, d))
bad += ["%s is missing" % k for k in want]
for line in bad:
    print("# " + line)
sys.exit(1 if bad else 0)
EOF
}
# value SERIES: its value in the last scrape.
value() { awk -v k="$1" '$1 == k { print $2 }' "$T_WORK/s$N"; }
A='kasa_httpd_authentications_total'
F='kasa_httpd_authentication_failures_total'

check "a first scrape, and promtool check metrics passes it" scrape
check "Content-Type: text/plain; version=0.0.4; charset=utf-8" \
	grep -qi '^Content-Type: text/plain; version=0.0.4; charset=utf-8' "$T_WORK/h$N"
check "every counter starts at 0 (but the first load of the keys)" sh -c \
	"! grep '_total' '$T_WORK/s$N' | grep -v '^#' | grep -v '^kasa_httpd_keys_reloads_total ' | grep -qv ' 0\$'"
check "the keys were loaded once, all of them, none refused" sh -c \
	"grep -q '^kasa_httpd_keys_reloads_total 1\$' '$T_WORK/s$N' &&
	 grep -q \"^kasa_httpd_keys_entries \$(klist -k '$T_WORK/http.keytab' | grep -c '@')\\\$\" '$T_WORK/s$N' &&
	 grep -q '^kasa_httpd_keytab_refused_total 0\$' '$T_WORK/s$N'"
check "each metric has HELP and TYPE" sh -c "for m in ${A} ${F} kasa_httpd_replays_total kasa_httpd_keytab_kvno \
	kasa_httpd_keytab_mtime_seconds kasa_httpd_start_time_seconds kasa_httpd_build_info; do
	grep -q \"^# HELP \$m \" '$T_WORK/s$N' && grep -q \"^# TYPE \$m \" '$T_WORK/s$N' || exit 1; done"
check "build_info is this version" test "$(value "kasa_httpd_build_info{version=\"$KASA_PROJECT_VERSION\"}")" = 1
ST=$(value kasa_httpd_start_time_seconds)
check "start_time is when it started ($ST)" test "$T0" -le "$ST" -a "$ST" -le "$T1"
check "keytab_mtime is the keytab's" test "$(value kasa_httpd_keytab_mtime_seconds)" = "$(stat -c %Y "$T_WORK/http.keytab")"
KVNO=$(klist -k "$T_WORK/http.keytab" | awk -v p="HTTP/$NAME@PROSEWARE.LAB" '$2 == p && $1 > m { m = $1 } END { print m }')
check "keytab_kvno for HTTP/$NAME is klist -k's ($KVNO)" \
	test "$(value "kasa_httpd_keytab_kvno{principal=\"HTTP/$NAME@PROSEWARE.LAB\"}")" = "$KVNO"

# One Kerberos login.
check "a Kerberos login: 200" test "$(curl -s -v -o /dev/null -w '%{http_code}' --negotiate -u : --resolve "$R" "$U" 2>"$T_WORK/v.err")" = 200
TOKEN=$(sed -n 's/^> Authorization: \(Negotiate .*\)\r*$/\1/p' "$T_WORK/v.err" | tr -d '\r' | head -1)
check "scrape" scrape
check "kerberos ok moved by 1, nothing else" moved "$A{mechanism=\"kerberos\",result=\"ok\"}=1"
# Its token again: a replay.
check "the same token again: 401" test "$(curl -s -o /dev/null -w '%{http_code}' --resolve "$R" -H "Authorization: $TOKEN" "$U")" = 401
check "scrape" scrape
check "a replay: kerberos failed, failures{replay} and replays_total moved by 1, nothing else" \
	moved "$A{mechanism=\"kerberos\",result=\"failed\"}=1" "$F{reason=\"replay\"}=1" kasa_httpd_replays_total=1
# One NTLM login (curl sends its NEGOTIATE at once: one leg that continues, one that ends).
check "an NTLM login: 200" test "$(curl -s -o /dev/null -w '%{http_code}' --ntlm -u "PROSEWARE\\alice:$ALICE_NTLM" --resolve "$R" "$U")" = 200
check "scrape" scrape
check "ntlm ok moved by 1, nothing else" moved "$A{mechanism=\"ntlm\",result=\"ok\"}=1"
check "a wrong NTLM password: 401" test "$(curl -s -o /dev/null -w '%{http_code}' --ntlm -u "PROSEWARE\\alice:wrong" --resolve "$R" "$U")" = 401
check "scrape" scrape
check "ntlm failed and failures{ntlm_refused} moved by 1, nothing else" \
	moved "$A{mechanism=\"ntlm\",result=\"failed\"}=1" "$F{reason=\"ntlm_refused\"}=1"
# A failure with no mechanism: no token.
check "no token: 401" test "$(curl -s -o /dev/null -w '%{http_code}' --resolve "$R" "$U")" = 401
check "scrape" scrape
check "none failed and failures{no_token} moved by 1, nothing else" \
	moved "$A{mechanism=\"none\",result=\"failed\"}=1" "$F{reason=\"no_token\"}=1"
check "a malformed header: 400" test "$(curl -s -o /dev/null -w '%{http_code}' --resolve "$R" -H 'Authorization: Negotiate !!!' "$U")" = 400
check "scrape" scrape
check "none failed and failures{malformed} moved by 1, nothing else" \
	moved "$A{mechanism=\"none\",result=\"failed\"}=1" "$F{reason=\"malformed\"}=1"
check "the auth log has one line per attempt counted (6), besides the NTLM challenges' legs" \
	test "$(grep -vc '"challenge","' "$T_WORK/a.log")" -eq 6
check "failure reasons are the fixed classes, never the log's words" test "$(grep -o '^kasa_httpd_authentication_failures_total{reason="[a-z_]*"}' "$T_WORK/s$N" | sed 's/.*="//; s/".*//' | tr '\n' ' ')" = \
	"no_token malformed scheme_refused replay wrong_key ntlm_refused channel_binding other "

# The keytab is read at each scrape: a new key shows at once.
kadmin_local "ktadd -k $T_WORK/http.keytab HTTP/$NAME" >/dev/null
KVNO2=$(klist -k "$T_WORK/http.keytab" | awk -v p="HTTP/$NAME@PROSEWARE.LAB" '$2 == p && $1 > m { m = $1 } END { print m }')
check "scrape" scrape
check "after a new key, keytab_kvno is klist's new highest ($KVNO2 > $KVNO)" sh -c \
	"[ '$KVNO2' -gt '$KVNO' ] && [ \"\$(awk -v k='kasa_httpd_keytab_kvno{principal=\"HTTP/$NAME@PROSEWARE.LAB\"}' '\$1 == k { print \$2 }' '$T_WORK/s$N')\" = '$KVNO2' ]"

# Anything but GET /metrics: 404; the main port does not serve metrics.
for how in "$ADDR:$MP/" "$ADDR:$MP/metrics/" "$ADDR:$MP/Metrics" "$ADDR:$MP/metrics?x -X POST -d x" "$ADDR:$MP/metrics -I"; do
	# shellcheck disable=SC2086
	check "$how: 404" test "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://$how)" = 404
done
check "the main port has no /metrics (401)" test "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADDR:$HP/metrics")" = 401
check "the log says where the metrics are" grep -q "metrics at http://$ADDR:$MP/metrics" "$T_WORK/a.err"
kill "$SPID"
wait "$SPID" 2>/dev/null
SPID=

# From the config file: metrics_listen and metrics_port.
MP2=$(free_port $ADDR)
printf '[kasa-httpd]\n\tkeytab = %s\n\tlisten = %s\n\tport = %s\n\tmetrics_listen = %s\n\tmetrics_port = %s\n\tpidfile = %s\n\tlog = %s\n' \
	"$T_WORK/http.keytab" $ADDR "$HP" $ADDR "$MP2" "$T_WORK/b.pid" "$T_WORK/b.err" >"$T_WORK/kasa.conf"
"$KASA_HTTPD" --config "$T_WORK/kasa.conf" >/dev/null &
SPID=$!
for _ in $(seq 50); do [ -s "$T_WORK/b.pid" ] && break; sleep 0.1; done
M="http://$ADDR:$MP2/metrics"
check "metrics_listen and metrics_port from kasa.conf: scraped" scrape
check "with the keytab's kvno" test "$(value "kasa_httpd_keytab_kvno{principal=\"HTTP/$NAME@PROSEWARE.LAB\"}")" = "$KVNO2"

done_testing
