#!/bin/sh
# kasad against hostile peers (issue 9): NTLM and SPNEGO tokens to a kasad that runs
# without --principal (kasad accepts Kerberos only); a flood of idle and trickling
# connections while kasa status and kasa roll run; a replayed wrapped request; and a
# member whose keytab holds a principal and a kvno the array does not own, which kasa
# copy refuses to pass on and kasa status flags.
. "$(dirname "$0")/lib.sh"

: "${MEMBERTOOL:?}" "${KASAD:?}"
export KASAD
FLOOD="python3 $(dirname "$0")/flood.py"
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'

lab_up --members 2
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
m() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1][sys.argv[3]])' "$T_WORK/lab.json" "$1" "$2"; }
ADDR1=$(m 1 address)
PORT1=$(m 1 port)
ADDR2=$(m 2 address)
PORT2=$(m 2 port)

"$KASA" account create "$ASA" --computer >/dev/null
"$KASA" spn add HTTP/outlook.proseware.lab "$ASA" >/dev/null
"$KASA" spn add http/outlook.proseware.lab "$ASA" >/dev/null 2>&1
"$KASA" array create $ARRAY --asa "$ASA" >/dev/null
for i in 1 2; do
	"$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(m $i port)" --address "$(m $i address)" >/dev/null
done
expect 0 "a first roll" "$KASA" roll $ARRAY

# cas1's kasad as kasad(8) starts it by default: no --principal, so any key in its keytab.
"$KASA" lab member stop cas1 --dir "$LAB" >/dev/null
LOG1="$T_WORK/kasad1.log"
"$KASAD" --foreground --listen "$ADDR1" --port "$PORT1" --keytab "$(m 1 host_keytab)" \
	--managed-keytab "$(m 1 managed_keytab)" --acl "$(m 1 acl)" --log "$LOG1" \
	--pidfile "$T_WORK/kasad1.pid" &
KASAD1=$!
stop_kasad1() { kill "$KASAD1" 2>/dev/null; wait "$KASAD1" 2>/dev/null; }
trap 'stop_kasad1; cleanup' EXIT
for _ in $(seq 50); do [ -s "$T_WORK/kasad1.pid" ] && break; sleep 0.1; done
KEEPER1=$(pgrep -P "$KASAD1")

for kind in ntlm spnego-ntlm; do
	expect 0 "an unauthenticated $kind NEGOTIATE token to kasad without --principal" \
		"$MEMBERTOOL" raw "$ADDR1" "$PORT1" $kind
	out_has "error frame: authentication failed" "$kind: refused as a failed authentication"
	check "$kind: kasad still runs" kill -0 "$KASAD1"
	check "$kind: its keeper still runs" kill -0 "$KEEPER1"
done
expect 0 "a roll right after succeeds" "$KASA" roll $ARRAY
out_has "to kvno 3" "to kvno 3"

# A flood: 300 idle connections from one address, and 270 trickling a byte a second
# from nine others (30 each, within the per-address share, so the handshake deadline and
# the full budget stop them), re-opened as soon as kasad drops them, while the controller
# works from yet another address. The flood comes from 127.0.1.0/24, where no test's
# server listens: its thousands of short-lived source ports never take a port that a test
# running beside this one has just chosen for a server.
$FLOOD "$ADDR1" "$PORT1" --idle 300 --source 127.0.1.2 --seconds 25 >"$T_WORK/idle.out" 2>&1 &
IDLE=$!
$FLOOD "$ADDR1" "$PORT1" --trickle 270 --interval 1 --seconds 25 \
	--source 127.0.1.3,127.0.1.4,127.0.1.5,127.0.1.6,127.0.1.7,127.0.1.8,127.0.1.9,127.0.1.10,127.0.1.11 \
	>"$T_WORK/trickle.out" 2>&1 &
TRICKLE=$!
for _ in $(seq 100); do grep -q READY "$T_WORK/idle.out" && grep -q READY "$T_WORK/trickle.out" && break; sleep 0.1; done
sleep 6 # past the handshake deadline: the tricklers have been dropped and came back
expect 0 "kasa status during the flood" "$KASA" status $ARRAY
out_has "cas1.proseware.lab" "names cas1"
expect 0 "kasa roll during the flood" "$KASA" roll $ARRAY
out_has "to kvno 4" "to kvno 4"
expect 0 "kasa status again during the flood" "$KASA" status $ARRAY
check "the idle flood is still running (it was not the flood that ended)" kill -0 $IDLE
wait $IDLE $TRICKLE
IDLE_OUT=$(tail -1 "$T_WORK/idle.out")
TRICKLE_OUT=$(tail -1 "$T_WORK/trickle.out")
closed() { echo "$1" | awk '{ print $4 }'; }
check "kasad dropped idle connections beyond its per-address share ($IDLE_OUT)" \
	test "$(closed "$IDLE_OUT")" -ge 268
check "kasad dropped the tricklers ($TRICKLE_OUT)" test "$(closed "$TRICKLE_OUT")" -ge 270
check "kasad logged the drops" grep -q "dropped for a newer connection" "$LOG1"
check "refusals are logged at a bounded rate: a summary line, not one line each" \
	grep -q "not logged one by one" "$LOG1"
lines=$(wc -l <"$LOG1")
check "kasad's log stays small under the flood ($lines lines)" test "$lines" -lt 200
check "kasad still runs after the flood" kill -0 "$KASAD1"
expect 0 "kasa status after the flood" "$KASA" status $ARRAY

# The handshake deadline holds however often a peer sends: ten tricklers, a byte every
# 0.3 s, each lives 5 s (the default --handshake-timeout), not the 8 s they would trickle.
$FLOOD "$ADDR1" "$PORT1" --trickle 10 --interval 0.3 --source 127.0.1.22 --seconds 8 >"$T_WORK/slow.out" 2>&1
SLOW_OUT=$(tail -1 "$T_WORK/slow.out")
check "tricklers were closed ($SLOW_OUT)" test "$(closed "$SLOW_OUT")" -ge 10
check "none lived past the handshake deadline ($SLOW_OUT)" \
	python3 -c 'import sys; sys.exit(not 4.5 <= float(sys.argv[1]) <= 6.5)' "$(echo "$SLOW_OUT" | awk '{ print $8 }')"

# A wrapped request sent twice on one connection: the second is a replay.
expect 0 "one wrapped status request, sent twice" "$MEMBERTOOL" replay cas2.proseware.lab "$ADDR2" "$PORT2"
out_has "first: accepted" "the first is answered"
out_has "second: refused a replayed or reordered message" "the second is refused as a replay"
check "kasad logged the replay" grep -q "a replayed message" "$(m 2 log)"

# cas2's keytab doctored: a foreign principal at a kvno the directory never had. Staged
# through kasad as kasa's own principal, as a compromised controller host could.
expect 0 "doctor cas2: HTTP/evil.proseware.lab at kvno 7" \
	"$MEMBERTOOL" stage cas2.proseware.lab "$ADDR2" "$PORT2" 7 'HTTP/evil.proseware.lab@PROSEWARE.LAB'
before=$(klist -k "$(m 1 managed_keytab)" | sort)
expect 1 "kasa copy from the doctored member refuses" "$KASA" copy $ARRAY --from cas2.proseware.lab --to cas1.proseware.lab
err_has "HTTP/evil.proseware.lab@PROSEWARE.LAB at kvno 7, not the array's" "names the foreign principal"
err_has "kvno 7, newer than the directory's kvno 4" "names the future kvno"
err_has "nothing was copied" "says nothing was copied"
err_one_line "in one line"
check "cas1's keytab is unchanged (klist -k)" test "$(klist -k "$(m 1 managed_keytab)" | sort)" = "$before"
check "cas1 holds no evil principal" sh -c "! klist -k '$(m 1 managed_keytab)' | grep -q evil"
expect 1 "kasa status flags the doctored member" "$KASA" status $ARRAY
out_has "FOREIGN" "as FOREIGN"
out_has "HTTP/evil.proseware.lab@PROSEWARE.LAB at kvno 7" "naming what it holds"
expect 1 "kasa status --json" "$KASA" status $ARRAY --json
check "cas1 is OK, cas2 FOREIGN in the JSON" test "$(json members.0.verdict) $(json members.1.verdict)" = "OK FOREIGN"
expect 0 "a copy from the healthy member still works" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab

stop_kasad1
done_testing
