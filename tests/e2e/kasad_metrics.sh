#!/bin/sh
# kasad's Prometheus metrics (issue 13): a kasad of our own with --metrics-port, scraped
# before and after each kind of request or refusal (a status request, a stage, a principal
# not on the ACL, raw garbage, a bad token, a replayed message, a silent peer): each counter
# moves by exactly what it should, and nothing else moves. Every scrape passes promtool
# check metrics; kasad_keytab_kvno is klist -k's; other paths are 404; bad settings are
# refused in one line; metrics_listen/metrics_port work from the config file. Then the
# alerting rules (promtool check rules, promtool test rules).
. "$(dirname "$0")/lib.sh"

: "${MEMBERTOOL:?}" "${KASAD:?}"
PROM="$(cd "$(dirname "$0")/../../packaging/prometheus" && pwd)"
ADDR=127.0.0.21
MADDR=127.0.0.1
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

expect 0 "promtool check rules kasa.rules.yml" promtool check rules "$PROM/kasa.rules.yml"
expect 0 "promtool test rules kasa.rules.test.yml (kasad down, member stale, refusals rising)" \
	promtool test rules "$PROM/kasa.rules.test.yml"

# Bad settings: exit 2 and one line.
for bad in "--metrics-port x" "--metrics-port 0" "--metrics-port 65536" "--metrics-port -1" \
	"--metrics-port 80x" "--metrics-listen localhost --metrics-port 9100" "--metrics-listen 127.0.0.1" \
	"--metrics-listen ::1x --metrics-port 9100"; do
	# shellcheck disable=SC2086
	run "$KASAD" --managed-keytab "$T_WORK/none.keytab" --acl /dev/null $bad
	check "$bad: exit 2 and one line" sh -c "[ $T_STATUS -eq 2 ] && [ \$(printf '%s\n' \"\$1\" | wc -l) -eq 1 ] &&
		case \"\$1\" in 'kasad: '*) true;; *) false;; esac" - "$T_ERR"
done
printf '[kasad]\n\tmanaged_keytab = x\n\tacl = y\n\tmetrics_port = many\n' >"$T_WORK/bad.conf"
expect 2 "metrics_port = many in the config is refused" "$KASAD" --config "$T_WORK/bad.conf"
err_has "bad.conf: [kasad] metrics_port many is not a number from 1 to 65535" "naming the file and the key"
printf '[kasad]\n\tmanaged_keytab = x\n\tacl = y\n\tmetrics_listen = 127.0.0.1\n' >"$T_WORK/bad2.conf"
expect 2 "metrics_listen without metrics_port in the config is refused" "$KASAD" --config "$T_WORK/bad2.conf"
check "in one line" test "$(printf '%s\n' "$T_ERR" | wc -l)" -eq 1

lab_up --members 1
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
m() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["members"][0][sys.argv[2]])' "$T_WORK/lab.json" "$1"; }
HOST=cas1.proseware.lab
P1='CASARRAY-ASA$@PROSEWARE.LAB'
P2='HTTP/outlook.proseware.lab@PROSEWARE.LAB'
KT="$T_WORK/array.keytab"
PORT=$(free_port $ADDR)
MP=$(free_port $MADDR)
cat >"$T_WORK/kasad.conf" <<EOF
[kasad]
	keytab = $(m host_keytab)
	principal = host/$HOST@PROSEWARE.LAB
	managed_keytab = $KT
	acl = $(m acl)
	listen = $ADDR
	port = $PORT
	pidfile = $T_WORK/kasad.pid
	log = $T_WORK/kasad.log
	handshake_timeout = 1000
EOF
T0=$(date +%s)
"$KASAD" --foreground --config "$T_WORK/kasad.conf" --metrics-port "$MP" &
SPID=$!
for _ in $(seq 50); do [ -s "$T_WORK/kasad.pid" ] && break; sleep 0.1; done
check "our kasad listens on $ADDR:$PORT, metrics on $MADDR:$MP (--metrics-port alone)" test -s "$T_WORK/kasad.pid"
T1=$(date +%s)
M="http://$MADDR:$MP/metrics"

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
Q='kasad_requests_total'
R='kasad_connections_refused_total'
klist_kvno() { klist -k "$KT" | awk -v p="$1" '$2 == p && $1 > m { m = $1 } END { print m }'; }

check "a first scrape, and promtool check metrics passes it" scrape
check "Content-Type: text/plain; version=0.0.4; charset=utf-8" \
	grep -qi '^Content-Type: text/plain; version=0.0.4; charset=utf-8' "$T_WORK/h$N"
check "every counter starts at 0" sh -c "! grep '_total' '$T_WORK/s$N' | grep -v '^#' | grep -qv ' 0\$'"
check "each metric has HELP and TYPE" sh -c "for m in $Q $R kasad_replays_total kasad_keytab_readable \
	kasad_keytab_kvno kasad_keytab_kvno_arrival_seconds kasad_start_time_seconds kasad_build_info; do
	grep -q \"^# HELP \$m \" '$T_WORK/s$N' && grep -q \"^# TYPE \$m \" '$T_WORK/s$N' || exit 1; done"
check "requests are counted by the fixed ops (seven, prove too) and results" test "$(grep -c "^$Q{op=\"[a-z]*\",result=\"\(ok\|refused\|failed\)\"} " "$T_WORK/s$N")" -eq 21
check "refusals are the fixed classes" test "$(grep -o "^$R{reason=\"[a-z_]*\"}" "$T_WORK/s$N" | sed 's/.*="//; s/".*//' | tr '\n' ' ')" = \
	"acl auth malformed handshake_timeout budget busy replay descriptors "
check "build_info is this version" test "$(value "kasad_build_info{version=\"$KASA_PROJECT_VERSION\"}")" = 1
ST=$(value kasad_start_time_seconds)
check "start_time is when it started ($ST)" test "$T0" -le "$ST" -a "$ST" -le "$T1"
check "the keytab is readable (none yet: empty), and no kvno listed" \
	sh -c "[ \"\$(awk '\$1 == \"kasad_keytab_readable\" { print \$2 }' '$T_WORK/s$N')\" = 1 ] && ! grep -q '^kasad_keytab_kvno{' '$T_WORK/s$N'"

expect 0 "a status request" "$MEMBERTOOL" status $HOST $ADDR "$PORT"
check "scrape" scrape
check "requests{status,ok} moved by 1, nothing else" moved "$Q{op=\"status\",result=\"ok\"}=1"

A0=$(date +%s)
expect 0 "a stage request (kvno 1, two principals)" "$MEMBERTOOL" stage $HOST $ADDR "$PORT" 1 "$P1" "$P2"
A1=$(date +%s)
sleep 1.1 # past the metrics' one-second cache of the keeper's answer
check "scrape" scrape
check "requests{stage,ok} moved by 1, nothing else" moved "$Q{op=\"stage\",result=\"ok\"}=1"
KV=$(klist_kvno "$P1")
check "keytab_kvno for $P1 is klist -k's ($KV)" test "$(value "kasad_keytab_kvno{principal=\"$P1\"}")" = "$KV"
check "keytab_kvno for $P2 is klist -k's" test "$(value "kasad_keytab_kvno{principal=\"$P2\"}")" = "$(klist_kvno "$P2")"
AR=$(value 'kasad_keytab_kvno_arrival_seconds{kvno="1"}')
check "kvno 1 arrived during the stage ($A0 <= $AR <= $A1)" test "$A0" -le "$AR" -a "$AR" -le "$A1"
expect 0 "a stage of kvno 2 for one principal" "$MEMBERTOOL" stage $HOST $ADDR "$PORT" 2 "$P1"
sleep 1.1
check "scrape" scrape
check "keytab_kvno follows: $P1 at klist's $(klist_kvno "$P1"), $P2 still at 1" sh -c \
	"[ \"\$(awk -v k='kasad_keytab_kvno{principal=\"$P1\"}' '\$1 == k { print \$2 }' '$T_WORK/s$N')\" = '$(klist_kvno "$P1")' ] &&
	 [ \"\$(awk -v k='kasad_keytab_kvno{principal=\"$P2\"}' '\$1 == k { print \$2 }' '$T_WORK/s$N')\" = 1 ]"
check "no key material and nothing but kasad_ series in the exposition" \
	sh -c "! grep -v '^#' '$T_WORK/s$N' | grep -qv '^kasad_'"

# A principal not on the ACL: alice authenticates fine, and is refused.
sed "s|^\tprincipal = .*|\tprincipal = alice@PROSEWARE.LAB|; s|^\tkeytab = .*|\tkeytab = $LAB/alice.keytab|" "$KASA_CONFIG" >"$T_WORK/alice.conf"
KASA_CONFIG="$T_WORK/alice.conf" expect 1 "alice may not read status" "$MEMBERTOOL" status $HOST $ADDR "$PORT"
out_has "not on the member's ACL" "the refusal says why"
check "scrape" scrape
check "requests{status,refused} and refused{acl} moved by 1, nothing else" \
	moved "$Q{op=\"status\",result=\"refused\"}=1" "$R{reason=\"acl\"}=1"

expect 0 "raw garbage bytes" "$MEMBERTOOL" raw $ADDR "$PORT" garbage
check "scrape" scrape
check "refused{malformed} moved by 1, nothing else" moved "$R{reason=\"malformed\"}=1"
expect 0 "a bad token" "$MEMBERTOOL" raw $ADDR "$PORT" badtoken
check "scrape" scrape
check "refused{auth} moved by 1, nothing else" moved "$R{reason=\"auth\"}=1"
expect 0 "one wrapped status request, sent twice" "$MEMBERTOOL" replay $HOST $ADDR "$PORT"
out_has "second: refused a replayed or reordered message" "the second is refused as a replay"
check "scrape" scrape
check "requests{status,ok}, refused{replay} and replays_total moved by 1, nothing else" \
	moved "$Q{op=\"status\",result=\"ok\"}=1" "$R{reason=\"replay\"}=1" kasad_replays_total=1
expect 0 "a silent peer, dropped after handshake_timeout (1 s)" "$MEMBERTOOL" raw $ADDR "$PORT" silent
check "scrape" scrape
check "refused{handshake_timeout} moved by 1, nothing else" moved "$R{reason=\"handshake_timeout\"}=1"

# Anything but GET /metrics: 404; the main port does not speak HTTP.
for how in "$MADDR:$MP/" "$MADDR:$MP/metrics/" "$MADDR:$MP/Metrics" "$MADDR:$MP/metrics?x -X POST -d x" "$MADDR:$MP/metrics -I"; do
	# shellcheck disable=SC2086
	check "$how: 404" test "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://$how)" = 404
done
check "the log says where the metrics are" grep -q "metrics at http://$MADDR:$MP/metrics" "$T_WORK/kasad.log"
# Scrapes in a burst are answered, and kasad serves controllers meanwhile.
CURLS=
for i in $(seq 20); do
	curl -s -o "$T_WORK/burst$i" --max-time 10 "$M" &
	CURLS="$CURLS $!"
done
expect 0 "a status request during a burst of scrapes" "$MEMBERTOOL" status $HOST $ADDR "$PORT"
# shellcheck disable=SC2086
wait $CURLS
check "the 20 scrapes of the burst were answered" test "$(cat "$T_WORK"/burst* | grep -c '^kasad_build_info{')" -eq 20
kill "$SPID"
wait "$SPID"
check "kasad with metrics stops cleanly (exit 0)" test $? -eq 0
SPID=

# From the config file: metrics_listen and metrics_port.
MP2=$(free_port $MADDR)
printf '\tmetrics_listen = %s\n\tmetrics_port = %s\n' $MADDR "$MP2" >>"$T_WORK/kasad.conf"
"$KASAD" --foreground --config "$T_WORK/kasad.conf" &
SPID=$!
for _ in $(seq 50); do [ -s "$T_WORK/kasad.pid" ] && break; sleep 0.1; done
M="http://$MADDR:$MP2/metrics"
check "metrics_listen and metrics_port from the config: scraped" scrape
check "with klist's kvno" test "$(value "kasad_keytab_kvno{principal=\"$P1\"}")" = "$(klist_kvno "$P1")"

done_testing
