#!/bin/sh
# Keys nobody else can change: with a copy of a member's array keytab, MIT's own tools
# (k5srvutil, kinit, and the kpasswd protocol from the keytab alone) can neither re-key
# the ASA or an SPN nor get an initial ticket as one, while clients still get service
# tickets for every SPN and the members accept them. The roll keeps it so, and gives the
# protection back to an account made before kasa protected keys.
. "$(dirname "$0")/lib.sh"

: "${GSSCHECK:?}" "${KASAD:?}"
export KASAD
HERE=$(cd "$(dirname "$0")" && pwd)
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
SPNS="HTTP/outlook.proseware.lab exchangeMDB/outlook exchangeMDB/outlook.proseware.lab"
THIEF="env KRB5CCNAME=FILE:$T_WORK/thief.cc" # the copy's holder has a cache of their own

lab_up --members 2
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
member() { python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1]; print(m[sys.argv[3]])' "$T_WORK/lab.json" "$1" "$2"; }

expect 0 "create the ASA" "$KASA" account create "$ASA" --computer
for spn in $SPNS; do
	expect 0 "spn add $spn" "$KASA" spn add "$spn" "$ASA"
done
expect 0 "create the array" "$KASA" array create $ARRAY --asa "$ASA" --short-name outlook
for i in 1 2; do
	expect 0 "add cas$i" "$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(member $i port)" --address "$(member $i address)"
done
expect 0 "the first roll" "$KASA" roll $ARRAY

# dir_kvno PRINCIPAL: the directory's kvno for it, as kadmin.local sees it.
dir_kvno() { kadmin_local "getprinc $1" | sed -n 's/^Key: vno \([0-9]*\),.*/\1/p' | sort -n | tail -1; }
# kvnos: the directory's kvno of the ASA and of every SPN, on one line.
kvnos() { for p in "$ASA" $SPNS; do printf '%s=%s ' "$p" "$(dir_kvno "$p")"; done; }
all_accept() {
	for i in 1 2; do
		"$GSSCHECK" "$(member $i managed_keytab)" "$1@PROSEWARE.LAB" >"$T_WORK/gss.out" 2>&1 || { cat "$T_WORK/gss.out"; return 1; }
	done
}
fresh_tickets() { kdestroy >/dev/null 2>&1; kinit -k -t "$LAB/alice.keytab" alice; }
# clients_work: alice gets a ticket for every SPN, and both members accept each.
clients_work() {
	fresh_tickets
	for spn in $SPNS; do
		expect 0 "$1: alice's kvno $spn" kvno "$spn"
		check "$1: both members accept alice's ticket for $spn" all_accept "$spn"
	done
}

# What kasa set, in MIT's own words.
check "kadmin.local: the ASA requires hardware preauthentication" sh -c "kadmin.local -q 'getprinc $ASA' 2>/dev/null | grep -q '^Attributes:.*REQUIRES_HW_AUTH'"
check "kadmin.local: the ASA has the policy kasa-keys" sh -c "kadmin.local -q 'getprinc $ASA' 2>/dev/null | grep -q '^Policy: kasa-keys'"
check "kadmin.local: HTTP/ has an expired password and the policy kasa-keys" \
	sh -c "kadmin.local -q 'getprinc HTTP/outlook.proseware.lab' 2>/dev/null | grep -q '^Password expiration date: .* 1970' && kadmin.local -q 'getprinc HTTP/outlook.proseware.lab' 2>/dev/null | grep -q '^Policy: kasa-keys'"
check "kadmin.local: the SPNs do not require hardware preauthentication (tickets for them would fail)" \
	sh -c "! kadmin.local -q 'getprinc exchangeMDB/outlook' 2>/dev/null | grep -q REQUIRES_HW_AUTH"
check "kadmin.local: kasa-keys forbids a change for 24855 days" sh -c "kadmin.local -q 'getpol kasa-keys' 2>/dev/null | grep -q 'Minimum password life: 24855 days'"

# The copy of a member's keytab, in the hands of someone who is root on that member.
COPY="$T_WORK/copy.keytab"
cp "$(member 1 managed_keytab)" "$COPY"
before=$(kvnos)
entries=$(klist -k "$COPY" | grep -c @)
expect 1 "k5srvutil -f COPY change fails" $THIEF k5srvutil -f "$COPY" change
err_has "Generic preauthentication failure while initializing kadmin interface" "the KDC refuses kadmin to the ASA"
err_has "Password has expired while initializing kadmin interface" "and to the SPNs"
check "the directory's kvnos are unchanged (kadmin.local getprinc)" test "$(kvnos)" = "$before"
check "and the copy gained no entries" test "$(klist -k "$COPY" | grep -c @)" -eq "$entries"
expect 1 "kinit -k -t COPY as the ASA fails" $THIEF kinit -k -t "$COPY" "$ASA"
err_has "Generic preauthentication failure while getting initial credentials" "with MIT's words"
for spn in $SPNS; do
	expect 1 "kinit -k -t COPY as $spn fails" $THIEF kinit -k -t "$COPY" "$spn"
	err_has "Password has expired while getting initial credentials" "with MIT's words"
done
expect 1 "kinit as an SPN for kadmin/admin fails too" $THIEF kinit -k -t "$COPY" -S kadmin/admin HTTP/outlook.proseware.lab
# The one initial ticket an SPN gets is for kadmin/changepw, and kadmind refuses it a change.
expect 1 "kpasswd from the keytab alone as HTTP/ is refused" python3 "$HERE/kpasswd_keytab.py" "$COPY" HTTP/outlook.proseware.lab
out_has "Password cannot be changed because it was changed too recently" "by kadmind, in its words"
expect 2 "kpasswd from the keytab alone as the ASA gets no ticket" python3 "$HERE/kpasswd_keytab.py" "$COPY" "$ASA"
out_has "Generic preauthentication failure" "the KDC refuses it"
check "after all that, the directory's kvnos are unchanged" test "$(kvnos)" = "$before"
clients_work "after the attempts"
expect 0 "status: every member OK" "$KASA" status $ARRAY

# The roll keeps the protection and still works.
expect 0 "roll after the attempts" "$KASA" roll $ARRAY
out_has "from kvno 2 to kvno 3" "to kvno 3"
clients_work "after the roll"
cp "$(member 2 managed_keytab)" "$COPY"
expect 1 "kinit as the ASA with the new keys fails" $THIEF kinit -k -t "$COPY" "$ASA"
expect 1 "kinit as HTTP/ with the new keys fails (setkey cleared the expiration; kasa set it again)" $THIEF kinit -k -t "$COPY" HTTP/outlook.proseware.lab
err_has "Password has expired" "Password has expired"

# An account made before kasa protected keys: the next roll protects it.
kadmin_local "modprinc -requires_hwauth -clearpolicy $ASA" >/dev/null
kadmin_local "modprinc -pwexpire never -clearpolicy HTTP/outlook.proseware.lab" >/dev/null
kadmin_local "modpol -minlife 0 kasa-keys" >/dev/null
expect 0 "unprotected: kinit -k -t COPY as the ASA works" $THIEF kinit -k -t "$COPY" "$ASA"
expect 0 "unprotected: kinit -k -t COPY as HTTP/ works" $THIEF kinit -k -t "$COPY" HTTP/outlook.proseware.lab
expect 0 "roll the unprotected account" "$KASA" roll $ARRAY
out_has "from kvno 3 to kvno 4" "to kvno 4"
cp "$(member 1 managed_keytab)" "$COPY"
expect 1 "protected again: kinit as the ASA fails" $THIEF kinit -k -t "$COPY" "$ASA"
err_has "Generic preauthentication failure" "Generic preauthentication failure"
expect 1 "protected again: kinit as HTTP/ fails" $THIEF kinit -k -t "$COPY" HTTP/outlook.proseware.lab
err_has "Password has expired" "Password has expired"
before=$(kvnos)
expect 1 "protected again: k5srvutil change fails" $THIEF k5srvutil -f "$COPY" change
check "and changes no kvno" test "$(kvnos)" = "$before"
expect 1 "the policy's minimum life is back: kpasswd as HTTP/ is refused" python3 "$HERE/kpasswd_keytab.py" "$COPY" HTTP/outlook.proseware.lab
out_has "changed too recently" "changed too recently"
clients_work "after protecting again"

# New objects are protected from the start.
expect 0 "spn add a new SPN" "$KASA" spn add HTTP/mail.proseware.lab "$ASA"
kadmin_local "ktadd -norandkey -k $T_WORK/new.keytab HTTP/mail.proseware.lab" >/dev/null
expect 1 "kinit as the new SPN fails at once" $THIEF kinit -k -t "$T_WORK/new.keytab" HTTP/mail.proseware.lab
err_has "Password has expired" "Password has expired"
expect 1 "status: no member holds the new SPN's key yet" "$KASA" status $ARRAY
out_has "holds no key for HTTP/mail.proseware.lab@PROSEWARE.LAB" "names the SPN added since the roll"
expect 0 "a roll gives the members the new SPN" "$KASA" roll $ARRAY
fresh_tickets
expect 0 "alice gets a ticket for the new SPN" kvno HTTP/mail.proseware.lab
check "both members accept it" all_accept HTTP/mail.proseware.lab
expect 0 "status: every member OK at the end" "$KASA" status $ARRAY
expect 0 "a second account" "$KASA" account create 'OTHER-ASA$' --computer
check "is created requiring hardware preauthentication" sh -c "kadmin.local -q 'getprinc OTHER-ASA\$' 2>/dev/null | grep -q '^Attributes:.*REQUIRES_HW_AUTH'"

done_testing
