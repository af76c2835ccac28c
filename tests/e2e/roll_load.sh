#!/bin/sh
# A roll under continuous load (issue 14): forty clients authenticate with Kerberos
# (SPNEGO, a fresh authenticator and connection each time) through HAProxy to three
# members while three rolls commit one after another: thirty-two with the tickets they
# had before the rolls, eight with tickets fetched afresh for every request (so they use
# each new kvno the moment the KDC issues it). Not one authentication fails. Then clients
# with fresh tickets use the new kvno, and every member accepts it.
. "$(dirname "$0")/lib.sh"

ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
gssapi_python # the client needs python3-gssapi
LOAD=
FRESH=
stop_all() {
	touch "$T_WORK/stop"
	[ -n "$LOAD" ] && wait "$LOAD" 2>/dev/null
	[ -n "$FRESH" ] && wait "$FRESH" 2>/dev/null
	cleanup
}
trap stop_all EXIT

lab_up --members 3
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
jq1() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(" + sys.argv[2] + ")")' "$T_WORK/lab.json" "$1"; }
BPORT=$(jq1 'd["balancer"]["port"]')
"$KASA" account create "$ASA" --computer >/dev/null
"$KASA" spn add "HTTP/$ARRAY" "$ASA" >/dev/null
"$KASA" array create $ARRAY --asa "$ASA" >/dev/null
for i in 1 2 3; do
	"$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(jq1 "d['members'][$i-1]['port']")" \
		--address "127.0.0.1$i" >/dev/null
done
expect 0 "the first roll" "$KASA" roll $ARRAY
kinit -k -t "$LAB/alice.keytab" alice >/dev/null 2>&1
# The lab's krb5.conf maps the array's name to its realm; the balancer is 127.0.0.10.
"$PY" "$(dirname "$0")/negload.py" 127.0.0.10 "$BPORT" $ARRAY "$T_WORK/stop" 32 >"$T_WORK/load.out" 2>&1 &
LOAD=$!
"$PY" "$(dirname "$0")/negload.py" 127.0.0.10 "$BPORT" $ARRAY "$T_WORK/stop" 8 "$LAB/alice.keytab" \
	>"$T_WORK/fresh.out" 2>&1 &
FRESH=$!
sleep 2
for n in 3 4 5; do
	expect 0 "roll to kvno $n under load" "$KASA" roll $ARRAY
	sleep 1
done
sleep 1
touch "$T_WORK/stop"
wait "$LOAD"
wait "$FRESH"
LOAD=
FRESH=
loadv() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T_WORK/load.out" "$1"; }
freshv() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T_WORK/fresh.out" "$1"; }
check "the load ran: hundreds of authentications ($(loadv requests))" test "$(loadv requests)" -ge 200
check "not one failed across three rolls ($(loadv failed); $(loadv reasons))" test "$(loadv failed)" -eq 0
check "fresh-ticket clients ran too ($(freshv requests))" test "$(freshv requests)" -ge 50
check "not one of theirs failed ($(freshv failed); $(freshv reasons))" test "$(freshv failed)" -eq 0
for n in 3 4 5; do
	check "during the load, tickets at kvno $n were accepted at once" \
		sh -c "cat '$LAB'/cas*/auth.log | grep -q '\"Kerberos\",\"$n\",.*\"ok\"'"
done

# Fresh tickets after the last commit: kvno 5, accepted everywhere.
rm -f "$T_WORK/stop"
KRB5CCNAME="FILE:$T_WORK/fresh.cc" kinit -k -t "$LAB/alice.keytab" alice >/dev/null 2>&1
expect 0 "a fresh ticket is at kvno 5" env KRB5CCNAME="FILE:$T_WORK/fresh.cc" kvno "HTTP/$ARRAY"
out_has "kvno = 5" "kvno 5"
KRB5CCNAME="FILE:$T_WORK/fresh.cc" "$PY" "$(dirname "$0")/negload.py" 127.0.0.10 "$BPORT" $ARRAY \
	"$T_WORK/stop" 8 >"$T_WORK/load.out" 2>&1 &
LOAD=$!
sleep 2
touch "$T_WORK/stop"
wait "$LOAD"
LOAD=
check "with fresh tickets, every authentication succeeds ($(loadv ok) of $(loadv requests))" \
	test "$(loadv failed)" -eq 0 -a "$(loadv ok)" -ge 20
for i in 1 2 3; do
	check "cas$i accepted kvno 5 tickets" grep -q '"Kerberos","5",.*"ok"' "$LAB/cas$i/auth.log"
done
done_testing
