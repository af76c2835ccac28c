#!/bin/sh
# Status proves the keys themselves (MIT: kasa may read the directory's keys): every member
# shows, with a checksum over a fresh nonce, that every principal of the array (the ASA
# too, which no ticket names) holds the directory's key of every enctype, as the roll's
# stage proofs do. Fresh tickets check only the enctype the KDC picks for an SPN; a wrong
# aes128 key or a wrong key for the ASA's own entry is found by the proofs alone.
. "$(dirname "$0")/lib.sh"

: "${KASAD:?}"
export KASAD
HERE=$(dirname "$0")
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
REALM=PROSEWARE.LAB

array_up 2 "$ASA" $ARRAY HTTP/$ARRAY
expect 0 "a first roll" "$KASA" roll $ARRAY
KVNO=$(kadmin_local "getprinc $ASA" | sed -n 's/.*Key: vno \([0-9]*\),.*/\1/p' | head -1)
KT1=$(member 1 managed_keytab)
check "cas1 holds aes128 keys at kvno $KVNO" sh -c "klist -k -e '$KT1' | grep -q ' $KVNO .*aes128'"
expect 0 "status: every member proves its keys" "$KASA" status $ARRAY

# Every principal's aes128 key wrong on cas1 (the same wrong key for all): a ticket for the
# SPN is aes256, which still decrypts; the proof for enctype 17 fails.
cp "$KT1" "$T_WORK/kt1.good"
expect 0 "doctor every aes128 key of cas1 at kvno $KVNO" python3 "$HERE/ktdoctor.py" "$KT1" '*' "$KVNO" 17
kdestroy >/dev/null 2>&1
kinit -k -t "$LAB/alice.keytab" alice
check "a ticket for the SPN still decrypts with cas1's keytab (the KDC picks aes256)" \
	sh -c 'kvno -k "$1" "$2" >/dev/null 2>&1' _ "$KT1" HTTP/$ARRAY
expect 1 "status finds cas1's wrong aes128 key" "$KASA" status $ARRAY --json
check "cas1 WRONG-KEY, cas2 OK" test "$(json members.0.verdict) $(json members.1.verdict)" = "WRONG-KEY OK"
check "naming the enctype whose proof failed" sh -c 'case $1 in *"enctype 17"*) exit 0 ;; esac; exit 1' _ "$(json members.0.wrong_key)"
expect 1 "status in words" "$KASA" status $ARRAY
out_has "WRONG-KEY" "says WRONG-KEY"
expect 1 "diagnose names cas1" "$KASA" diagnose $ARRAY
out_has "cas1.proseware.lab" "names the member"
out_has "WRONG-KEY" "and the verdict"
expect 1 "a copy from cas1 with its wrong aes128 key is refused" \
	"$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab
err_has "the enctype 17 key cas1.proseware.lab holds at kvno $KVNO is not the directory's" "saying why"
expect 1 "status, cas1 still doctored" "$KASA" status $ARRAY --json
check "cas2 still proves the directory's keys (the copy changed nothing)" test "$(json members.1.verdict)" = OK
cp "$T_WORK/kt1.good" "$KT1"
expect 0 "with the keytab back, status is OK" "$KASA" status $ARRAY

# The ASA's own entry wrong on cas2 (no ticket names the ASA: requires_hwauth on MIT).
KT2=$(member 2 managed_keytab)
expect 0 "doctor cas2's entries for the ASA at kvno $KVNO" python3 "$HERE/ktdoctor.py" "$KT2" "$ASA@$REALM" "$KVNO"
expect 1 "status finds cas2's wrong key for the ASA" "$KASA" status $ARRAY --json
check "cas1 OK, cas2 WRONG-KEY" test "$(json members.0.verdict) $(json members.1.verdict)" = "OK WRONG-KEY"
expect 0 "a copy from cas1 mends it" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab
expect 0 "and status is OK" "$KASA" status $ARRAY
done_testing
