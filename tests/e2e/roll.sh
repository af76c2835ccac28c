#!/bin/sh
# The roll on a lab with three real kasad members: keys staged everywhere, then
# committed; MIT's klist -k, kvno and a GSS-API acceptor on each member's keytab check the
# result. Then the faults: a member down, a member whose ACL refuses us, the controller
# killed at each step and resumed, and a grep for key bytes in every log and output.
. "$(dirname "$0")/lib.sh"

: "${GSSCHECK:?}" "${KASAD:?}"
export KASAD
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
SPNS="http/outlook.proseware.lab HTTP/outlook.proseware.lab exchangeMDB/outlook exchangeMDB/outlook.proseware.lab"

lab_up --members 3
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
member() { python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1]; print(m[sys.argv[3]])' "$T_WORK/lab.json" "$1" "$2"; }

expect 0 "create the ASA" "$KASA" account create "$ASA" --computer
for spn in $SPNS; do
	"$KASA" spn add "$spn" "$ASA" >/dev/null 2>&1
done
expect 0 "create the array" "$KASA" array create $ARRAY --asa "$ASA" --short-name outlook
for i in 1 2 3; do
	expect 0 "add cas$i as a member" "$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(member $i port)" --address "$(member $i address)"
done
expect 0 "array show --json" "$KASA" array show $ARRAY --json
check "the array has three members" test "$(json members.2.host)" = cas3.proseware.lab
expect 1 "status before any roll: members hold nothing" "$KASA" status $ARRAY
out_has "MISSING" "and says MISSING"

# kvno_in KEYTAB KVNO: how many entries MIT's klist -k lists at that kvno.
kvno_in() { klist -k "$1" | awk -v k="$2" '$1 == k' | wc -l; }
# all_accept PRINCIPAL: every member's keytab accepts the ticket in the ccache.
all_accept() {
	for i in 1 2 3; do
		"$GSSCHECK" "$(member $i managed_keytab)" "$1@PROSEWARE.LAB" >"$T_WORK/gss.out" 2>&1 || { cat "$T_WORK/gss.out"; return 1; }
	done
}
fresh_tickets() { kdestroy >/dev/null 2>&1; kinit -k -t "$LAB/alice.keytab" alice; }

expect 0 "roll to three members, verbose" "$KASA" roll $ARRAY -v
out_has "rolled $ARRAY from kvno 1 to kvno 2" "from kvno 1 to kvno 2"
out_has "cas2.proseware.lab       stage    done" "-v shows each member's stage"
out_has "commit   kvno 2 committed" "-v shows the commit"
cp "$T_WORK/out" "$T_WORK/roll1.out"
for i in 1 2 3; do
	check "cas$i's keytab (klist -k) holds kvno 2 for the ASA and 4 SPNs x 2 enctypes" \
		test "$(kvno_in "$(member $i managed_keytab)" 2)" -eq 10
	check "cas$i's keytab is mode 0600" test "$(stat -c %a "$(member $i managed_keytab)")" = 600
done
fresh_tickets
for spn in $SPNS; do
	expect 0 "kvno as alice: $spn" kvno "$spn"
	out_has "kvno = 2" "at kvno 2"
done
check "every member accepts alice's ticket for HTTP/ (kvno 2)" all_accept HTTP/outlook.proseware.lab
check "and for exchangeMDB/outlook" all_accept exchangeMDB/outlook

# stamps_of KEYTAB KVNO: the timestamps MIT's klist -k -t shows for that kvno's entries.
stamps_of() { klist -k -t "$1" | awk -v k="$2" '$1 == k { print $2, $3 }'; }
for i in 1 2 3; do
	stamps_of "$(member $i managed_keytab)" 2 >"$T_WORK/stamps$i.before"
	check "klist -k -t shows cas$i's 10 kvno 2 entries with a timestamp" test "$(grep -c / "$T_WORK/stamps$i.before")" -eq 10
done
sleep 1 # so that a rewritten timestamp would differ

# A ticket obtained before a roll still works after it.
expect 0 "a second roll" "$KASA" roll $ARRAY
out_has "from kvno 2 to kvno 3" "to kvno 3"
check "kadmin.local: the ASA is at kvno 3" sh -c "kadmin.local -q 'getprinc CASARRAY-ASA\$' 2>/dev/null | grep -q 'vno 3'"
check "the ticket fetched before the roll (kvno 2) is still accepted everywhere" all_accept HTTP/outlook.proseware.lab
for i in 1 2 3; do
	check "cas$i holds kvno 3 and kept kvno 2" test "$(kvno_in "$(member $i managed_keytab)" 3)" -eq 10 -a "$(kvno_in "$(member $i managed_keytab)" 2)" -eq 10
	stamps_of "$(member $i managed_keytab)" 2 >"$T_WORK/stamps$i.after"
	check "cas$i's kvno 2 entries keep the timestamp of the first roll (klist -k -t)" \
		cmp -s "$T_WORK/stamps$i.before" "$T_WORK/stamps$i.after"
	check "and kvno 3's entries carry their own, later time" \
		test "$(stamps_of "$(member $i managed_keytab)" 3 | sort -u)" != "$(sort -u "$T_WORK/stamps$i.before")"
done
fresh_tickets
expect 0 "kvno now says 3" kvno HTTP/outlook.proseware.lab
out_has "kvno = 3" "kvno 3"
check "and the new ticket is accepted everywhere" all_accept HTTP/outlook.proseware.lab
expect 0 "status: all OK" "$KASA" status $ARRAY
out_has "directory kvno 3" "names the directory's kvno"
check "three members OK" test "$(printf '%s\n' "$T_OUT" | grep -c ' OK ')" -eq 3
expect 0 "status --json" "$KASA" status $ARRAY --json
check "latest is kvno 3" test "$(json members.0.kvnos.0.kvno)" = 3
check "previous is kvno 2" test "$(json members.0.kvnos.1.role)" = previous

# A member down: the roll stops before the directory, says who, exits 3.
expect 0 "stop cas2" "$KASA" lab member stop cas2 --dir "$LAB"
expect 3 "roll with cas2 down exits 3" "$KASA" roll $ARRAY
err_has "cas2.proseware.lab" "the error names cas2"
err_has "directory is unchanged" "and says the directory is unchanged"
check "kadmin.local: the ASA is still at kvno 3" sh -c "kadmin.local -q 'getprinc CASARRAY-ASA\$' 2>/dev/null | grep -q 'vno 3'"
check "kadmin.local: the SPNs are still at kvno 3" sh -c "kadmin.local -q 'getprinc HTTP/outlook.proseware.lab' 2>/dev/null | grep -q 'vno 3'"
expect 1 "status with cas2 down exits 1" "$KASA" status $ARRAY
out_has "UNREACHABLE" "and says UNREACHABLE"
expect 0 "start cas2" "$KASA" lab member start cas2 --dir "$LAB"
expect 0 "kasa copy from cas1 to cas2" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab
expect 0 "roll again" "$KASA" roll $ARRAY
out_has "to kvno 4" "to kvno 4"
expect 0 "status: all OK again" "$KASA" status $ARRAY

# --force: commit without a member, which is marked stale until a copy brings it back.
expect 0 "stop cas3" "$KASA" lab member stop cas3 --dir "$LAB"
expect 3 "roll --force without cas3 commits, and exits 3" "$KASA" roll $ARRAY --force
err_has "marked stale" "saying cas3 is marked stale"
check "kadmin.local: the directory moved to kvno 5" sh -c "kadmin.local -q 'getprinc CASARRAY-ASA\$' 2>/dev/null | grep -q 'vno 5'"
expect 0 "start cas3" "$KASA" lab member start cas3 --dir "$LAB"
expect 1 "status says cas3 is STALE" "$KASA" status $ARRAY
out_has "STALE" "STALE"
expect 0 "array show --json marks it stale" "$KASA" array show $ARRAY --json
check "stale: true" test "$(json members.2.stale)" = True
expect 0 "copy to cas3" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas3.proseware.lab
expect 0 "status: all OK after the copy" "$KASA" status $ARRAY

# --members: only the named ones; --dry-run changes nothing.
expect 0 "dry run" "$KASA" roll $ARRAY --dry-run
out_has "nothing changed" "says nothing changed"
check "kadmin.local: still kvno 5" sh -c "kadmin.local -q 'getprinc CASARRAY-ASA\$' 2>/dev/null | grep -q 'vno 5'"
expect 1 "roll --members with a host that is not a member (kasa(1): 1, nothing changed)" "$KASA" roll $ARRAY --members cas9.proseware.lab
expect 0 "kasa copy to a new member from cas1 (all three take it)" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab,cas3.proseware.lab
expect 2 "copy with the same source and target" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas1.proseware.lab
expect 2 "copy without --to" "$KASA" copy $ARRAY --from cas1.proseware.lab

# The ACL: a member that does not list us refuses, and logs it.
ACL3=$(member 3 acl)
cp "$ACL3" "$T_WORK/acl.saved"
echo "someone/else@PROSEWARE.LAB" >"$ACL3"
expect 1 "status with cas3 refusing us" "$KASA" status $ARRAY
out_has "not on the member's ACL" "says cas3's ACL refused"
expect 3 "a roll cas3 refuses exits 3" "$KASA" roll $ARRAY
err_has "cas3.proseware.lab" "naming cas3"
check "cas3's kasad logged the refusal" grep -q "refused kasa/admin@PROSEWARE.LAB: not on the ACL" "$(member 3 log)"
cp "$T_WORK/acl.saved" "$ACL3"
expect 0 "with the ACL back, status is OK" "$KASA" status $ARRAY

# The controller killed at each step of a roll: every member still accepts tickets for
# the directory's kvno, and --resume finishes the roll.
for point in recorded staged spns-committed committed saved; do
	before=$("$KASA" account show "$ASA" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["kvno"])')
	KASA_TEST_KILL_AT=$point "$KASA" roll $ARRAY >/dev/null 2>&1
	check "the controller was killed at '$point'" test $? -eq 137
	fresh_tickets
	check "after the kill at '$point', every member accepts a ticket at the directory's kvno" all_accept HTTP/outlook.proseware.lab
	expect 0 "kasa roll --resume after '$point'" "$KASA" roll --resume $ARRAY
	expect 0 "status after resuming '$point': all OK" "$KASA" status $ARRAY
	after=$("$KASA" account show "$ASA" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["kvno"])')
	check "the roll interrupted at '$point' moved kvno $before to $((before + 1))" test "$after" -eq $((before + 1))
	fresh_tickets
	check "and every member accepts the new kvno" all_accept exchangeMDB/outlook
done
expect 0 "a resume with nothing in progress is fine" "$KASA" roll --resume $ARRAY
out_has "no roll of $ARRAY was in progress" "and says so"

# Bad input: exit 2, nothing changed.
expect 2 "roll without an array" "$KASA" roll
expect 2 "roll of a malformed name" "$KASA" roll "bad name"
expect 1 "roll of an unknown array" "$KASA" roll nowhere.proseware.lab
expect 2 "roll with an unknown option" "$KASA" roll $ARRAY --frob
expect 2 "array add-member with a bad port" "$KASA" array add-member $ARRAY cas4.proseware.lab:99999
expect 1 "array create with an unknown ASA" "$KASA" array create x.proseware.lab --asa 'NOPE$'
expect 2 "array create without --asa" "$KASA" array create x.proseware.lab

# No key byte in any log or output: take the keys from a keytab with MIT's klist -kK
# (kept in a variable, never printed) and look for them everywhere else.
KEYS=$(klist -kK "$(member 1 managed_keytab)" | sed -n 's/.*(0x\([0-9a-f]*\)).*/\1/p' | sort -u)
check "the test found keys to look for" test -n "$KEYS"
leaks=0
for k in $KEYS; do
	for f in "$T_WORK"/*.out "$T_WORK/out" "$T_WORK/err" "$LAB"/*.log "$LAB"/*.out "$LAB"/cas*/*.log "$LAB"/cas*/*.out "$LAB"/cas*/*.state; do
		[ -f "$f" ] || continue
		if grep -qi "$k" "$f"; then leaks=$((leaks + 1)); fi
	done
done
check "no key appears in any log, output or state file" test "$leaks" -eq 0

done_testing
