#!/bin/sh
# kasa verify: a ticket for every SPN, presented to every member directly (kasad asks the
# member's keytab; the HTTP endpoint authenticates). All accepted on a healthy array; a
# member given a stale keytab is rejected for every SPN, the reason naming the kvno.
. "$(dirname "$0")/lib.sh"

ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
lab_up --members 2
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
m() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1][sys.argv[3]])' "$T_WORK/lab.json" "$1" "$2"; }
mh() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1]["http"]["port"])' "$T_WORK/lab.json" "$1"; }

expect 0 "create the ASA" "$KASA" account create "$ASA" --computer
for spn in HTTP/outlook.proseware.lab exchangeMDB/outlook exchangeRFR/outlook.proseware.lab; do
	"$KASA" spn add "$spn" "$ASA" >/dev/null 2>&1
done
expect 0 "create the array" "$KASA" array create $ARRAY --asa "$ASA"
for i in 1 2; do
	expect 0 "add cas$i with its HTTP port" "$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(m $i port)" --address "127.0.0.1$i" --http-port "$(mh $i)"
done
expect 0 "array show --json keeps the HTTP port" "$KASA" array show $ARRAY --json
check "the HTTP port of cas2" test "$(json members.1.http_port)" = "$(mh 2)"

expect 1 "verify before any roll: rejected (the members hold nothing)" "$KASA" verify $ARRAY
out_has "REJECTED" "says REJECTED"
expect 0 "roll" "$KASA" roll $ARRAY
cp "$(m 2 managed_keytab)" "$T_WORK/kvno2.keytab"

expect 0 "verify a healthy array" "$KASA" verify $ARRAY --json
check "all accepted" test "$(json all_accepted)" = True
check "2 members x 3 SPNs through kasad, and HTTP/ on 2 endpoints: 8 checks" \
	python3 -c 'import json,sys; sys.exit(0 if len(json.load(sys.stdin)["checks"]) == 8 else 1)' <<EOF2
$T_OUT
EOF2
expect 0 "kinit as alice" kinit -k -t "$LAB/alice.keytab" alice
expect 0 "verify --as alice (tickets from her ccache)" "$KASA" verify $ARRAY --as alice@PROSEWARE.LAB

# A stale member: cas2's keytab put back to what it held at kvno 2, the directory at 4.
expect 0 "roll" "$KASA" roll $ARRAY
expect 0 "roll" "$KASA" roll $ARRAY
cp "$T_WORK/kvno2.keytab" "$(m 2 managed_keytab).new"
mv "$(m 2 managed_keytab).new" "$(m 2 managed_keytab)"
expect 1 "verify with a stale member exits 1" "$KASA" verify $ARRAY --json
python3 - "$T_OUT" >"$T_WORK/verdicts" <<'EOF2'
import json, sys
for c in json.loads(sys.argv[1])["checks"]:
    print(c["member"], c["via"], "ok" if c["accepted"] else "REJECTED", c["reason"] or "")
EOF2
check "cas2 is rejected through kasad for all 3 SPNs" test "$(grep -c '^cas2.proseware.lab kasad REJECTED' "$T_WORK/verdicts")" -eq 3
check "with a reason naming the ticket's kvno and what cas2 holds" \
	test "$(grep '^cas2.proseware.lab kasad' "$T_WORK/verdicts" | grep -c 'the ticket is at kvno 4; this member holds kvno 2')" -eq 3
check "cas2's HTTP endpoint rejects too" grep -q '^cas2.proseware.lab http REJECTED' "$T_WORK/verdicts"
check "cas1 is accepted everywhere" test "$(grep '^cas1' "$T_WORK/verdicts" | grep -vc ' ok')" -eq 0
expect 0 "copy from cas1 repairs cas2" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab
expect 0 "and verify is all accepted again" "$KASA" verify $ARRAY

expect 2 "verify without an array" "$KASA" verify
expect 1 "verify an unknown array" "$KASA" verify nowhere.proseware.lab
expect 2 "add-member with a bad HTTP port" "$KASA" array add-member $ARRAY cas9.proseware.lab --http-port 0

done_testing
