#!/bin/sh
# kasa diagnose finds each fault planted in a healthy array, one at a time, says how to
# fix it, and calls the healthy name healthy.
. "$(dirname "$0")/lib.sh"

: "${KASAD:?}"
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
lab_up --members 2
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
m() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1][sys.argv[3]])' "$T_WORK/lab.json" "$1" "$2"; }
BPORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["balancer"]["port"])' "$T_WORK/lab.json")
diag() { "$KASA" diagnose "$1" --port "$BPORT" --address 127.0.0.10; }

expect 1 "before the ASA: not healthy" diag $ARRAY
out_has "no account owns HTTP/outlook.proseware.lab" "names the missing SPN"
out_has "fall back to NTLM" "explains the NTLM fallback"
out_has "fix: kasa spn add HTTP/outlook.proseware.lab" "and the fix"
out_has "a client gets no Kerberos ticket" "the live request could not use Kerberos"

expect 0 "create the ASA" "$KASA" account create "$ASA" --computer
for spn in http/outlook.proseware.lab HTTP/outlook.proseware.lab exchangeMDB/outlook.proseware.lab \
	exchangeRFR/outlook.proseware.lab exchangeAB/outlook.proseware.lab HTTP/outlook exchangeMDB/outlook; do
	"$KASA" spn add "$spn" "$ASA" >/dev/null 2>&1
done
expect 0 "create the array" "$KASA" array create $ARRAY --asa "$ASA" --short-name outlook
for i in 1 2; do
	"$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(m $i port)" --address "127.0.0.1$i" >/dev/null
done
expect 0 "roll" "$KASA" roll $ARRAY
expect 0 "a healthy name is called healthy" diag $ARRAY
out_has "healthy: clients using this name can use Kerberos" "says healthy"
out_has "authenticated with Kerberos" "the live request used Kerberos"
expect 0 "diagnose --json" "$KASA" diagnose $ARRAY --json
check "healthy in JSON" test "$(json healthy)" = True

# A missing SPN.
expect 0 "take HTTP/ away" "$KASA" spn delete HTTP/outlook.proseware.lab "$ASA"
expect 1 "missing SPN" diag $ARRAY
out_has "clients ask for HTTP/outlook.proseware.lab, but only http/outlook.proseware.lab exists" "says which spelling exists"
out_has "fix: kasa spn add HTTP/outlook.proseware.lab CASARRAY-ASA\$" "with the fix"
expect 0 "put it back" "$KASA" spn add HTTP/outlook.proseware.lab "$ASA"

# A duplicate SPN, planted behind kasa's back.
kadmin_local 'addprinc -randkey EXCHANGEMDB/outlook.proseware.lab' >/dev/null
expect 1 "duplicate SPN" diag $ARRAY
out_has "is also claimed as EXCHANGEMDB/outlook.proseware.lab" "names the rival"
kadmin_local 'delprinc -force EXCHANGEMDB/outlook.proseware.lab' >/dev/null

# An SPN on the wrong account.
expect 0 "another account" "$KASA" account create 'OTHER$' --computer
expect 0 "move exchangeRFR/ to it" sh -c "'$KASA' spn delete exchangeRFR/outlook.proseware.lab '$ASA' && '$KASA' spn add exchangeRFR/outlook.proseware.lab 'OTHER\$'"
expect 1 "SPN on the wrong account" diag $ARRAY
out_has "belongs to OTHER\$, not to the array's ASA CASARRAY-ASA\$" "says whose it is and whose it should be"
expect 0 "move it back" sh -c "'$KASA' spn delete exchangeRFR/outlook.proseware.lab 'OTHER\$' && '$KASA' spn add exchangeRFR/outlook.proseware.lab '$ASA'"

# A stale member: cas2 misses a roll.
expect 0 "stop cas2" "$KASA" lab member stop cas2 --dir "$LAB"
expect 3 "a forced roll leaves cas2 behind" "$KASA" roll $ARRAY --force
expect 0 "start cas2" "$KASA" lab member start cas2 --dir "$LAB"
expect 1 "stale member" diag $ARRAY
out_has "cas2.proseware.lab is STALE" "names the stale member"
out_has "fix: kasa copy" "and the fix"
expect 0 "copy repairs it" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab
expect 0 "healthy again" diag $ARRAY

# A skewed member clock, faked with kasad --clock-offset (not the system clock).
expect 0 "stop cas2" "$KASA" lab member stop cas2 --dir "$LAB"
D2="$LAB/cas2"
"$KASAD" --foreground --listen 127.0.0.12 --port "$(m 2 port)" --keytab "$D2/host.keytab" \
	--principal host/cas2.proseware.lab@PROSEWARE.LAB --managed-keytab "$D2/array.keytab" \
	--acl "$D2/acl" --log "$T_WORK/skew.log" --clock-offset 900 &
SKEWED=$!
sleep 0.5
expect 1 "skewed clock" diag $ARRAY
out_has "cas2.proseware.lab's clock is 900 seconds off" "names the member and the skew"
kill "$SKEWED"
wait "$SKEWED" 2>/dev/null

expect 2 "diagnose without a name" "$KASA" diagnose
expect 2 "diagnose a malformed name" "$KASA" diagnose "out look"
expect 2 "diagnose with a bad port" "$KASA" diagnose $ARRAY --port 0

done_testing
