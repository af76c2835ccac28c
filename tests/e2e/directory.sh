#!/bin/sh
# The directory interface below the commands, on a real kadmind: keys set at an explicit
# kvno reach the account and every SPN it owns, SPN principals carry exactly the
# account's keys, and per-object metadata round-trips. MIT's tools check each result.
. "$(dirname "$0")/lib.sh"

: "${DIRTOOL:?DIRTOOL must point to the dirtool test driver}"
ASA='CASARRAY-ASA$'

# keys_of PRINCIPAL KVNO: the key checksum lines of one principal at one kvno, as MIT's
# klist -kK prints them from a keytab made by kadmin.local ktadd -norandkey. Only a hash
# of the keys leaves this function; the keys themselves are never printed.
keys_of() {
	kt="$T_WORK/check.keytab"
	rm -f "$kt"
	kadmin_local "ktadd -norandkey -k $kt $1" >/dev/null
	lines=$(klist -kK -e "$kt" 2>/dev/null | awk -v k="$2" '$1 == k { print $NF, $(NF-1) }' | sort)
	rm -f "$kt"
	# No keys must never compare equal to anything: name the principal instead.
	if [ -z "$lines" ]; then echo "no keys for $1 at kvno $2"; else printf '%s\n' "$lines" | sha256sum; fi
}

lab_up
expect 2 "--dns-host-name on MIT is refused" "$KASA" account create 'WEB-ASA$' --computer \
	--dns-host-name web.proseware.lab
err_has "an MIT Kerberos principal has no DNS host name" "says why"
err_one_line "in one line"
check "nothing was created" sh -c "! kadmin.local -r PROSEWARE.LAB -q listprincs 2>/dev/null | grep -q 'WEB-ASA'"
expect 0 "create the ASA" "$KASA" account create "$ASA" --computer
expect 0 "give it http/outlook.proseware.lab" "$KASA" spn add http/outlook.proseware.lab "$ASA"
expect 0 "give it exchangeMDB/outlook" "$KASA" spn add exchangeMDB/outlook "$ASA"

expect 0 "read the account's kvno" "$DIRTOOL" kvno "$ASA"
check "a new account starts at kvno 1" test "$T_OUT" = 1
check "the SPN principal holds exactly the account's keys" \
	test "$(keys_of "$ASA" 1)" = "$(keys_of http/outlook.proseware.lab 1)"
check "and so does the second SPN" \
	test "$(keys_of "$ASA" 1)" = "$(keys_of exchangeMDB/outlook 1)"
check "the keys are really there" sh -c "! echo '$(keys_of "$ASA" 1)' | grep -q 'no keys'"
OLD_KEYS=$(keys_of "$ASA" 1)

expect 0 "set new keys at kvno 7" "$DIRTOOL" setkey "$ASA" 7
out_has "set 2 keys at kvno 7" "two enctypes, kvno 7"
expect 0 "read the kvno back" "$DIRTOOL" kvno "$ASA"
check "the account is at kvno 7" test "$T_OUT" = 7
check "kadmin.local: the account's keys are at vno 7" \
	sh -c "kadmin.local -q 'getprinc CASARRAY-ASA\$' 2>/dev/null | grep -q 'vno 7'"
check "kadmin.local: the SPN's keys are at vno 7" \
	sh -c "kadmin.local -q 'getprinc http/outlook.proseware.lab' 2>/dev/null | grep -q 'vno 7'"
check "the SPN's new keys are the account's new keys" \
	test "$(keys_of "$ASA" 7)" = "$(keys_of http/outlook.proseware.lab 7)"
check "and not the old ones" test "$(keys_of "$ASA" 7)" != "$OLD_KEYS"
check "the directory kept no kvno 1 keys" sh -c "echo '$(keys_of "$ASA" 1)' | grep -q 'no keys'"
expect 0 "kinit as alice" kinit -k -t "$LAB/alice.keytab" alice
expect 0 "kvno as alice for the SPN" kvno http/outlook.proseware.lab
out_has "kvno = 7" "the KDC now issues tickets at kvno 7"
expect 0 "account show agrees" "$KASA" account show "$ASA" --json
check "account show says kvno 7" test "$(json kvno)" = 7
expect 0 "an SPN added later gets the current keys" "$KASA" spn add exchangeAB/outlook "$ASA"
check "at kvno 7, equal to the account's" \
	test "$(keys_of "$ASA" 7)" = "$(keys_of exchangeAB/outlook 7)"

# An account whose SPN index is not complete (made by an older kasa; here taken away by
# hand, one entry with it): a key change still reaches every SPN, found by reading the
# realm, and leaves the index complete again.
kadmin_local 'del_string CASARRAY-ASA$ kasa.index' >/dev/null
kadmin_local 'del_string CASARRAY-ASA$ kasa.spn:exchangeMDB/outlook' >/dev/null
check "kadmin.local: the index no longer says complete" \
	sh -c "! kadmin.local -q 'get_strings CASARRAY-ASA\$' 2>/dev/null | grep -q '^kasa.index:'"
expect 0 "set new keys at kvno 8" "$DIRTOOL" setkey "$ASA" 8
check "the SPN missing from the index has them" \
	test "$(keys_of "$ASA" 8)" = "$(keys_of exchangeMDB/outlook 8)"
check "and so do the others" \
	test "$(keys_of "$ASA" 8)" = "$(keys_of http/outlook.proseware.lab 8)"
check "and the third" test "$(keys_of "$ASA" 8)" = "$(keys_of exchangeAB/outlook 8)"
check "kadmin.local: the index says complete again" \
	sh -c "kadmin.local -q 'get_strings CASARRAY-ASA\$' 2>/dev/null | grep -q '^kasa.index: complete'"
check "kadmin.local: with exchangeMDB/outlook in it" \
	sh -c "kadmin.local -q 'get_strings CASARRAY-ASA\$' 2>/dev/null | grep -q '^kasa.spn:exchangeMDB/outlook:'"
# An SPN principal deleted behind kasa's back: the next key change skips it, and does
# not fail on its entry.
kadmin_local 'delprinc -force exchangeAB/outlook' >/dev/null
expect 0 "set new keys at kvno 9 after an SPN was deleted with kadmin.local" "$DIRTOOL" setkey "$ASA" 9
check "the remaining SPNs have them" \
	test "$(keys_of "$ASA" 9)" = "$(keys_of http/outlook.proseware.lab 9)"

expect 1 "setkey on an account that does not exist" "$DIRTOOL" setkey 'NOPE$' 2
err_has "no account NOPE\$" "names it"

expect 0 "meta-set on the account" "$DIRTOOL" meta-set "$ASA" kasa.test "a value, with spaces"
expect 0 "meta-get reads it back" "$DIRTOOL" meta-get "$ASA" kasa.test
check "the same value" test "$T_OUT" = "a value, with spaces"
check "kadmin.local get_strings shows it" \
	sh -c "kadmin.local -q 'get_strings CASARRAY-ASA\$' 2>/dev/null | grep -q 'kasa.test: a value, with spaces'"
expect 1 "meta-get of a key that is not set" "$DIRTOOL" meta-get "$ASA" kasa.nothing
expect 1 "meta-get on an object that does not exist" "$DIRTOOL" meta-get 'NOPE$' kasa.test

done_testing
