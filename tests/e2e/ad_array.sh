#!/bin/sh
# Array records on AD (kasa lab up --ad): an array is a serviceConnectionPoint in kasa's
# container (CN=kasa,CN=System,DC=proseware,DC=lab), read back by kasa array show/list and
# checked in the DC's sam.ldb with ldbsearch; per-account metadata round-trips; two rolls
# at once meet at the lock record and exactly one is told the other is running.
. "$(dirname "$0")/lib.sh"

if ! command -v samba >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP the AD lab needs samba and root"
	exit 0
fi

ASA='CASARRAY-ASA$'
ARRAY=outlook.proseware.lab
SCP="CN=array-$ARRAY,CN=kasa,CN=System,DC=proseware,DC=lab"

lab_up --ad
SAM="$LAB/ad/private/sam.ldb"
# ldbsearch of one DN in sam.ldb: its attributes, LDIF's folded lines joined; nothing
# when it does not exist.
scp() { ldbsearch -H "$SAM" -s base -b "$1" '(objectClass=*)' "$2" 2>/dev/null | sed -e ':a' -e 'N' -e '$!ba' -e 's/\n //g'; }

expect 0 "create the ASA" "$KASA" account create "$ASA" --computer
expect 0 "array list with no arrays" "$KASA" array list
expect 0 "array create" "$KASA" array create $ARRAY --asa "$ASA" --short-name outlook
run scp "$SCP" objectClass
out_has "objectClass: serviceConnectionPoint" "AD holds the array as a serviceConnectionPoint"
run scp "$SCP" serviceBindingInformation
out_has "serviceBindingInformation: kasa.asa=$ASA" "its ASA is a serviceBindingInformation value"
run scp "$SCP" serviceClassName
out_has "serviceClassName: kasa-array" "its class name says what it is"
run scp "$SCP" serviceDNSName
out_has "serviceDNSName: $ARRAY" "its DNS name is the array's FQDN"
expect 1 "creating it twice is refused" "$KASA" array create $ARRAY --asa "$ASA"
err_has "already exists" "the refusal says it exists"
err_one_line "the refusal is one line"

expect 0 "add cas1" "$KASA" array add-member $ARRAY cas1.proseware.lab:7461 --address 127.0.0.11
expect 0 "add cas2" "$KASA" array add-member $ARRAY cas2.proseware.lab:7462 --address 127.0.0.12
expect 0 "array show" "$KASA" array show $ARRAY
out_has "cas1.proseware.lab" "show lists cas1"
out_has "cas2.proseware.lab" "show lists cas2"
out_has "$ASA" "show names the ASA"
expect 0 "array show --json" "$KASA" array show $ARRAY --json
check "the JSON has the second member" test "$(json members.1.host 2>/dev/null)" = cas2.proseware.lab
run scp "$SCP" serviceBindingInformation
out_has "cas2.proseware.lab" "AD holds the members"
check "one kasa.members value, not two" test "$(printf '%s\n' "$T_OUT" | grep -c 'kasa.members=')" -eq 1
expect 0 "array list" "$KASA" array list
out_has "$ARRAY" "list shows the array"
expect 0 "remove cas2" "$KASA" array remove-member $ARRAY cas2.proseware.lab
expect 0 "array show after remove" "$KASA" array show $ARRAY
check "cas2 is gone" sh -c "! printf '%s' \"\$1\" | grep -q cas2.proseware.lab" sh "$T_OUT"
expect 1 "show of an array that does not exist" "$KASA" array show nope.proseware.lab
err_one_line "the refusal is one line"

# Metadata on an account (dirtool: no kasa command uses it yet).
expect 0 "meta-set on the ASA" "$DIRTOOL" meta-set "$ASA" kasa.test "a value, with spaces"
expect 0 "meta-get reads it back" "$DIRTOOL" meta-get "$ASA" kasa.test
check "the value round-trips" test "$T_OUT" = "a value, with spaces"
expect 0 "meta-set replaces it" "$DIRTOOL" meta-set "$ASA" kasa.test "other"
expect 0 "meta-get reads the new value" "$DIRTOOL" meta-get "$ASA" kasa.test
check "the new value round-trips" test "$T_OUT" = "other"
expect 1 "meta-get of a key that is not set" "$DIRTOOL" meta-get "$ASA" kasa.nothing
expect 1 "meta-get on an account that does not exist" "$DIRTOOL" meta-get 'NOPE$' kasa.test

# Two rolls at once: the lock is written under a private name, then renamed into place
# with one LDAP modrdn, which the DC grants once. Each run waits
# 1.5 s holding it (KASA_TEST_HOLD_AT), so they always meet; what the roll does after
# the lock does not matter here.
# busy_of_two NAME: two rolls of NAME at once; how many were told the other is running.
busy_of_two() {
	KASA_TEST_HOLD_AT=locked "$KASA" roll "$1" >"$T_WORK/a.out" 2>"$T_WORK/a.err" &
	A=$!
	KASA_TEST_HOLD_AT=locked "$KASA" roll "$1" >"$T_WORK/b.out" 2>"$T_WORK/b.err" &
	B=$!
	wait $A
	wait $B
	cat "$T_WORK/a.err" "$T_WORK/b.err" | grep -c "a roll of $1 is running on "
}
bad=0
for round in 1 2 3; do
	busy=$(busy_of_two $ARRAY)
	if [ "$busy" -ne 1 ]; then
		bad=$((bad + 1))
		echo "# round $round: $(cat "$T_WORK/a.err" "$T_WORK/b.err" | tr '\n' ' ')"
	fi
done
check "3 rounds of two rolls at once: exactly one is told the other is running" test "$bad" -eq 0
run scp "CN=lock-$ARRAY,CN=kasa,CN=System,DC=proseware,DC=lab" dn
check "the lock is released after the rolls" sh -c "! printf '%s' \"\$1\" | grep -q '^dn:'" sh "$T_OUT"

# An array name too long for AD's 64-character cn with its prefix (and its lock's private
# names longer still): the cn keeps a prefix and a hash of the whole, the name stays
# whole in serviceDNSName, and the lock still lets one of two rolls through.
LONG=a-load-balanced-array-with-a-rather-long-name-01.proseware.lab
check "the long name has ${#LONG} characters, over the 58 that array-NAME allows" test ${#LONG} -gt 58
expect 0 "array create with the long name" "$KASA" array create $LONG --asa "$ASA"
expect 0 "array show finds it" "$KASA" array show $LONG --json
check "by its whole name" test "$(json fqdn)" = $LONG
expect 0 "array list names it whole" "$KASA" array list
out_has "$LONG" "its whole name"
check "two rolls of it at once: exactly one is told the other is running" \
	test "$(busy_of_two $LONG)" -eq 1
check "no lock record of it left but those moved aside" sh -c \
	"! ldbsearch -H '$SAM' -b 'CN=kasa,CN=System,DC=proseware,DC=lab' '(serviceDNSName=$LONG*)' serviceDNSName 2>/dev/null | grep '^serviceDNSName: $LONG/' | grep -qv '/gone-'"
expect 0 "array delete with the long name" "$KASA" array delete $LONG

# diagnose flags an ASA whose msDS-SupportedEncryptionTypes was cleared behind kasa's back:
# AD would issue RC4 tickets that AES-only members cannot decrypt.
expect_finding() { "$KASA" diagnose $ARRAY --json | grep -c "$1"; }
check "diagnose: the ASA allows AES only" test "$(expect_finding 'allows AES only')" -ge 1
printf 'dn: CN=CASARRAY-ASA,CN=Computers,DC=proseware,DC=lab\nchangetype: modify\ndelete: msDS-SupportedEncryptionTypes\n' >"$T_WORK/noet.ldif"
expect 0 "clear msDS-SupportedEncryptionTypes with ldbmodify" ldbmodify -H "$SAM" "$T_WORK/noet.ldif"
expect 1 "diagnose is not healthy then" "$KASA" diagnose $ARRAY
out_has 'CASARRAY-ASA$ has no msDS-SupportedEncryptionTypes: AD issues its tickets with RC4' "it names the cause"
out_has "Set-ADComputer CASARRAY-ASA -KerberosEncryptionType AES128,AES256" "and the fix"
expect 0 "account show says so too" "$KASA" account show "$ASA"
out_has "not set: AD issues RC4 tickets" "in words"
printf 'dn: CN=CASARRAY-ASA,CN=Computers,DC=proseware,DC=lab\nchangetype: modify\nadd: msDS-SupportedEncryptionTypes\nmsDS-SupportedEncryptionTypes: 24\n' >"$T_WORK/et.ldif"
expect 0 "put it back" ldbmodify -H "$SAM" "$T_WORK/et.ldif"

expect 0 "array delete" "$KASA" array delete $ARRAY
run scp "$SCP" dn
check "AD no longer holds the array" sh -c "! printf '%s' \"\$1\" | grep -q '^dn:'" sh "$T_OUT"
expect 0 "array list after delete" "$KASA" array list
check "the list is empty" sh -c "! printf '%s' \"\$1\" | grep -q '$ARRAY'" sh "$T_OUT"

done_testing
