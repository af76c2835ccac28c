#!/bin/sh
# The first half of the seed on a real lab realm: create the ASA, give it the array's
# seven SPNs, refuse a duplicate, back one out, find duplicates made behind kasa's back.
# Where it matters, MIT's own tools (kadmin.local, kinit, kvno) check the result.
. "$(dirname "$0")/lib.sh"

ASA='CASARRAY-ASA$'
SEED="exchangeMDB/outlook exchangeRFR/outlook exchangeAB/outlook
exchangeMDB/outlook.proseware.lab exchangeRFR/outlook.proseware.lab
exchangeAB/outlook.proseware.lab http/outlook.proseware.lab"

lab_up

expect 0 "create the ASA as a computer account" \
	"$KASA" account create "$ASA" --computer --description "Alternate service account for outlook.proseware.lab"
out_has 'CASARRAY-ASA$@PROSEWARE.LAB' "create names the principal"
check "kadmin.local sees the ASA principal" sh -c "kadmin.local -q listprincs 2>/dev/null | grep -qx 'CASARRAY-ASA\\\$@PROSEWARE.LAB'"

expect 1 "creating it twice is refused" "$KASA" account create "$ASA" --computer
err_has "already exists" "the refusal says it exists"
err_one_line "the refusal is one line"

for spn in $SEED; do
	expect 0 "spn add $spn" "$KASA" spn add "$spn" "$ASA"
done
err_has "HTTP/outlook.proseware.lab" "adding http/ warns that clients ask for HTTP/"

expect 0 "spn list" "$KASA" spn list "$ASA"
check "spn list shows exactly the seven SPNs" \
	test "$T_OUT" = "$(printf '%s\n' $SEED | sort)"
expect 0 "spn list --json" "$KASA" spn list "$ASA" --json
check "the JSON list has seven SPNs" test "$(json spns.6)" != ""

expect 0 "account show --json" "$KASA" account show "$ASA" --json
check "the account is a computer account" test "$(json kind)" = computer
check "the account keeps its description" test "$(json description)" = "Alternate service account for outlook.proseware.lab"

expect 0 "spn query finds the owner" "$KASA" spn query http/outlook.proseware.lab
check "spn query prints the owner" test "$T_OUT" = "$ASA"
expect 1 "spn query of an unknown SPN exits 1" "$KASA" spn query http/nowhere.proseware.lab
err_has "no account owns SPN http/nowhere.proseware.lab" "and says no account owns it"

# MIT's own tools agree: alice gets a ticket for the SPN, at the ASA's kvno.
ASA_KVNO=$("$KASA" account show "$ASA" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["kvno"])')
expect 0 "kinit as alice" kinit -k -t "$LAB/alice.keytab" alice
expect 0 "kvno as alice for http/outlook.proseware.lab" kvno http/outlook.proseware.lab
out_has "kvno = $ASA_KVNO" "the service ticket has the ASA's kvno"
expect 0 "kvno as alice for the short name exchangeMDB/outlook" kvno exchangeMDB/outlook
check "the SPN principal is owned by the ASA (kadmin.local get_strings)" \
	sh -c "kadmin.local -q 'get_strings http/outlook.proseware.lab' 2>/dev/null | grep -q 'kasa.owner: CASARRAY-ASA\\\$'"

# A duplicate on a second account is refused, naming the owner; the directory is unchanged.
expect 0 "create a second account" "$KASA" account create 'OTHER-ASA$' --computer
before=$(principals)
strings_before=$(kadmin_local 'get_strings http/outlook.proseware.lab')
expect 1 "adding http/outlook.proseware.lab to the second account is refused" \
	"$KASA" spn add http/outlook.proseware.lab 'OTHER-ASA$'
err_has 'already belongs to CASARRAY-ASA$' "the refusal names the owner"
err_one_line "the refusal is one line"
check "kadmin.local: no principal was added or removed" test "$(principals)" = "$before"
check "kadmin.local: the SPN's owner is unchanged" \
	test "$(kadmin_local 'get_strings http/outlook.proseware.lab')" = "$strings_before"
expect 1 "a case variant on another account is refused too" \
	"$KASA" spn add HTTP/OUTLOOK.proseware.lab 'OTHER-ASA$'
err_has "differs only by case" "the refusal says why"
check "kadmin.local: still nothing changed" test "$(principals)" = "$before"

# The same account may hold a case variant (MIT keeps both), with a warning.
expect 0 "the owner may add HTTP/ next to http/" "$KASA" spn add HTTP/outlook.proseware.lab "$ASA"
err_has "differs only by case" "with a warning about the case"
expect 0 "adding an SPN it already owns changes nothing" "$KASA" spn add HTTP/outlook.proseware.lab "$ASA"
err_has "nothing to do" "and says so"

# The back-out (setspn -D).
expect 1 "delete from the wrong account is refused" \
	"$KASA" spn delete exchangeAB/outlook 'OTHER-ASA$'
err_has 'belongs to CASARRAY-ASA$, not to OTHER-ASA$' "naming both accounts"
expect 0 "spn delete backs one out" "$KASA" spn delete exchangeAB/outlook "$ASA"
check "kadmin.local: the principal is gone" sh -c "! kadmin.local -q listprincs 2>/dev/null | grep -qx 'exchangeAB/outlook@PROSEWARE.LAB'"
expect 1 "spn query no longer finds it" "$KASA" spn query exchangeAB/outlook
expect 1 "deleting it again says it is not there" "$KASA" spn delete exchangeAB/outlook "$ASA"
err_has "is not in the directory" "naming the SPN"
expect 0 "and it can be added again" "$KASA" spn add exchangeAB/outlook "$ASA"

# setspn -X: duplicates, including a principal planted behind kasa's back.
expect 0 "spn duplicates: the ASA's own case pair (http/ and HTTP/, as spn add allowed) is no duplicate" \
	"$KASA" spn duplicates
out_has "no duplicate SPNs" "and says so"
expect 0 "HTTP/ deleted from the ASA" "$KASA" spn delete HTTP/outlook.proseware.lab "$ASA"
expect 0 "spn duplicates still finds none" "$KASA" spn duplicates
kadmin_local 'addprinc -randkey HTTP/outlook.proseware.lab' >/dev/null
kadmin_local 'addprinc -randkey EXCHANGEMDB/outlook' >/dev/null
expect 1 "spn duplicates finds the principals planted with kadmin.local (exit 1)" "$KASA" spn duplicates
out_has "HTTP/outlook.proseware.lab" "it lists the planted HTTP/ principal"
out_has "EXCHANGEMDB/outlook" "it lists the planted EXCHANGEMDB/ principal"
out_has "$ASA" "next to the ASA that owns the same SPN"
expect 1 "spn duplicates --json" "$KASA" spn duplicates --json
check "the JSON marks the planted principal as not managed" \
	test "$(json 0.managed)" = False
expect 1 "spn add refuses an SPN that exists as a foreign principal" \
	"$KASA" spn add HTTP/outlook.proseware.lab "$ASA"
err_has "kasa does not manage" "and says kasa does not manage it"
expect 1 "spn delete will not delete a foreign principal" \
	"$KASA" spn delete HTTP/outlook.proseware.lab "$ASA"
check "kadmin.local: the planted principal is still there" sh -c "kadmin.local -q listprincs 2>/dev/null | grep -qx 'HTTP/outlook.proseware.lab@PROSEWARE.LAB'"

# kasa's indexes: kadm5 reads one principal per round trip, so kasa keeps on each account
# the names of its SPNs, and on the record kasa-index/accounts the names of its accounts;
# each entry is checked against the object itself, so edits made with kadmin.local
# behind kasa's back still come out right.
strings_of() { kadmin_local "get_strings $1"; }
check "the ASA's index lists its SPNs (kadmin.local get_strings)" \
	sh -c "kadmin.local -q 'get_strings CASARRAY-ASA\$' 2>/dev/null | grep -q '^kasa.spn:http/outlook.proseware.lab:'"
check "and says it is complete" \
	sh -c "kadmin.local -q 'get_strings CASARRAY-ASA\$' 2>/dev/null | grep -q '^kasa.index: complete'"
check "kasa-index/accounts lists both accounts" \
	test "$(strings_of kasa-index/accounts | grep -c '^kasa.account:\(CASARRAY\|OTHER\)-ASA\$:')" -eq 2
for i in 1 2 3; do
	expect 0 "spn add http/index$i.proseware.lab" "$KASA" spn add "http/index$i.proseware.lab" "$ASA"
done
kadmin_local 'delprinc -force http/index1.proseware.lab' >/dev/null
kadmin_local 'set_string http/index2.proseware.lab kasa.owner OTHER-ASA$' >/dev/null
kadmin_local 'addprinc -nokey http/planted.proseware.lab' >/dev/null
kadmin_local 'set_string CASARRAY-ASA$ kasa.spn:http/planted.proseware.lab ""' >/dev/null
expect 0 "spn list after edits made with kadmin.local" "$KASA" spn list "$ASA"
check "an SPN deleted with kadmin.local is not listed" sh -c "! echo '$T_OUT' | grep -q index1"
check "nor one given to another owner with kadmin.local" sh -c "! echo '$T_OUT' | grep -q index2"
check "nor a foreign principal entered in the index by hand" sh -c "! echo '$T_OUT' | grep -q planted"
check "the rest is listed: the seven SPNs and http/index3" \
	test "$T_OUT" = "$(printf '%s\n' $SEED http/index3.proseware.lab | grep -v '^HTTP/' | sort)"
expect 0 "spn query reads the SPN itself: http/index2 belongs to OTHER-ASA\$ now" \
	"$KASA" spn query http/index2.proseware.lab
check "spn query names OTHER-ASA\$" test "$T_OUT" = 'OTHER-ASA$'
# Taking kasa.index away makes kasa read the realm: how an account made by an older kasa
# is read, and the repair for an owner written by hand, which no index lists.
kadmin_local 'del_string OTHER-ASA$ kasa.index' >/dev/null
expect 0 "spn list of an account whose index is not complete" "$KASA" spn list 'OTHER-ASA$'
check "reads the realm and finds http/index2" test "$T_OUT" = http/index2.proseware.lab
kadmin_local 'del_string CASARRAY-ASA$ kasa.index' >/dev/null
kadmin_local 'del_string CASARRAY-ASA$ kasa.spn:exchangeAB/outlook' >/dev/null
expect 0 "spn list of the ASA with its index incomplete and one entry gone" "$KASA" spn list "$ASA"
check "still lists every SPN it owns" \
	test "$T_OUT" = "$(printf '%s\n' $SEED http/index3.proseware.lab | grep -v '^HTTP/' | sort)"
expect 0 "spn add to it" "$KASA" spn add http/index4.proseware.lab "$ASA"
check "makes its index complete again" \
	sh -c "kadmin.local -q 'get_strings CASARRAY-ASA\$' 2>/dev/null | grep -q '^kasa.index: complete'"
check "with the entry that was gone" \
	sh -c "kadmin.local -q 'get_strings CASARRAY-ASA\$' 2>/dev/null | grep -q '^kasa.spn:exchangeAB/outlook:'"
# MIT keeps at most 64 KB of strings on a principal: an index that cannot take an entry
# stops saying it is complete, and the SPN is made all the same.
i=0
while [ $i -lt 1500 ]; do
	echo "set_string CASARRAY-ASA\$ kasa.filler.$i 0123456789012345678901234567890123456789"
	i=$((i + 1))
done | kadmin.local -r PROSEWARE.LAB >/dev/null 2>&1
expect 0 "spn add to an account whose strings are full" "$KASA" spn add http/index5.proseware.lab "$ASA"
check "its index no longer says complete" \
	sh -c "! kadmin.local -q 'get_strings CASARRAY-ASA\$' 2>/dev/null | grep -q '^kasa.index:'"
expect 0 "spn list" "$KASA" spn list "$ASA"
check "lists the new SPN all the same" sh -c "echo '$T_OUT' | grep -qx http/index5.proseware.lab"
i=0
while [ $i -lt 1500 ]; do
	echo "del_string CASARRAY-ASA\$ kasa.filler.$i"
	i=$((i + 1))
done | kadmin.local -r PROSEWARE.LAB >/dev/null 2>&1
for i in 3 4 5; do
	expect 0 "spn delete http/index$i.proseware.lab" "$KASA" spn delete "http/index$i.proseware.lab" "$ASA"
done
check "spn delete takes the entry out of the index" \
	sh -c "! kadmin.local -q 'get_strings CASARRAY-ASA\$' 2>/dev/null | grep -q '^kasa.spn:http/index3'"
kadmin_local 'delprinc -force http/index2.proseware.lab' >/dev/null
kadmin_local 'delprinc -force http/planted.proseware.lab' >/dev/null
kadmin_local 'del_string CASARRAY-ASA$ kasa.spn:http/planted.proseware.lab' >/dev/null
# The account index.
expect 0 "create a third account" "$KASA" account create 'THIRD-ASA$' --computer
kadmin_local 'delprinc -force THIRD-ASA$' >/dev/null
expect 0 "account list after the third account was deleted with kadmin.local" "$KASA" account list
check "does not list it" sh -c "! echo '$T_OUT' | grep -q THIRD"
check "lists the other two" test "$(echo "$T_OUT" | grep -c -- '-ASA\$')" -eq 2
kadmin_local 'delprinc -force kasa-index/accounts' >/dev/null
expect 0 "account list with kasa-index/accounts deleted by hand" "$KASA" account list
check "reads the realm and lists both accounts" test "$(echo "$T_OUT" | grep -c -- '-ASA\$')" -eq 2
expect 0 "the next account create" "$KASA" account create 'FOURTH-ASA$' --computer
check "makes the index again, complete" \
	sh -c "kadmin.local -q 'get_strings kasa-index/accounts' 2>/dev/null | grep -q '^kasa.index: complete'"
check "listing all three accounts" \
	test "$(strings_of kasa-index/accounts | grep -c '^kasa.account:\(CASARRAY\|OTHER\|FOURTH\)-ASA\$:')" -eq 3
expect 0 "account delete FOURTH-ASA\$" "$KASA" account delete 'FOURTH-ASA$'
check "takes it out of the index" sh -c "! kadmin.local -q 'get_strings kasa-index/accounts' 2>/dev/null | grep -q FOURTH"
expect 1 "spn duplicates finds the same two planted duplicates as before" "$KASA" spn duplicates --json
check "four claims" test "$(printf '%s' "$T_OUT" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -eq 4

# The seed's typo, and bad input in general: exit 2, one line, nothing changed.
before=$(principals)
expect 2 "http/ (the seed's typo) is refused with exit 2" "$KASA" spn add http/ "$ASA"
err_has "http/ is not a valid SPN: no host after the service class" "with the reason"
err_one_line "in one line"
expect 2 "a realm suffix is refused" "$KASA" spn add http/a.proseware.lab@PROSEWARE.LAB "$ASA"
err_has "without the realm" "saying to drop the realm"
expect 2 "a port out of range is refused" "$KASA" spn add http/a.proseware.lab:70000 "$ASA"
expect 2 "a control character is refused" "$KASA" spn add "$(printf 'http/a\nb')" "$ASA"
err_one_line "and the error stays one line"
expect 2 "spn query of a malformed SPN" "$KASA" spn query "/outlook"
expect 2 "spn add with one operand" "$KASA" spn add http/a.proseware.lab
err_has "missing SPN ACCOUNT" "says what is missing"
expect 2 "spn add with three operands" "$KASA" spn add a/b c d
expect 2 "spn list with an unknown option" "$KASA" spn list "$ASA" --frobnicate
err_has "unknown option --frobnicate" "names the option"
expect 2 "an unknown spn verb" "$KASA" spn frob
expect 1 "spn add to an account that does not exist" "$KASA" spn add http/x.proseware.lab 'NOPE$'
err_has "no account NOPE\$" "names the account"
expect 1 "spn add to a principal kasa does not manage" "$KASA" spn add http/x.proseware.lab alice
err_has "does not manage" "says kasa does not manage alice"
expect 2 "a computer account name without \$" "$KASA" account create CASARRAY2 --computer
err_has 'did you mean CASARRAY2$?' "suggests the \$"
expect 2 "account create without a kind" "$KASA" account create 'X$'
expect 2 "account create with both kinds" "$KASA" account create 'X$' --computer --user
expect 2 "account create with a control character in the description" \
	"$KASA" account create 'X$' --computer --description "$(printf 'a\tb')"
expect 2 "account show of an invalid name" "$KASA" account show 'a/b'
check "kadmin.local: bad input changed nothing" test "$(principals)" = "$before"

# An account that owns SPNs is not deleted by accident.
expect 1 "account delete is refused while the ASA owns SPNs" "$KASA" account delete "$ASA"
err_has "owns 7 SPNs" "saying how many it owns"
err_has "--force" "and how to delete anyway"
check "kadmin.local: the ASA is still there" sh -c "kadmin.local -q listprincs 2>/dev/null | grep -qx 'CASARRAY-ASA\\\$@PROSEWARE.LAB'"
expect 0 "account delete of the account without SPNs" "$KASA" account delete 'OTHER-ASA$'
expect 0 "account list" "$KASA" account list --json
check "only the ASA is listed (not alice, not kasa/admin)" test "$(json 0.name)" = "$ASA"
expect 0 "account delete --force takes the SPNs with it" "$KASA" account delete "$ASA" --force
check "kadmin.local: no SPN of the ASA is left" \
	test "$(principals | grep outlook | grep -cv '^EXCHANGEMDB/\|^HTTP/')" -eq 0
check "kadmin.local: only the planted principals remain" \
	test "$(principals | grep -c outlook)" -eq 2

done_testing
