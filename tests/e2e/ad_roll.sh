#!/bin/sh
# The roll's keys on AD, proved against Samba's KDC without members: dirtool newkeys does
# the roll's key step (a new random password, the keys derived for kvno N+1 with AD's
# salt, the password set through kpasswd, msDS-KeyVersionNumber read back) and writes the
# derived keys to a keytab; kvno -k as alice then decrypts a fresh ticket from the DC with
# them, which only works if the salt and the kvno are AD's. For a computer ASA with SPNs,
# a user account with upper case in its name, and a password reset behind kasa's back
# between the key step and the commit (the kvno moves; the same keys at AD's kvno work).
. "$(dirname "$0")/lib.sh"

: "${DIRTOOL:?DIRTOOL must point to tests/e2e/dirtool}"
ASA='CASARRAY-ASA$'
USER_ASA='SvcArray'

lab_up --ad
SAM=$(find "$LAB" -path '*private/sam.ldb' | head -n 1)
check "the lab has a domain database" test -n "$SAM"
expect 0 "alice gets a TGT from the DC" kinit -k -t "$LAB/alice.keytab" alice@PROSEWARE.LAB

# ad_kvno NAME: msDS-KeyVersionNumber as AD itself holds it.
ad_kvno() {
	ldbsearch -H "$SAM" "(sAMAccountName=$1)" msDS-KeyVersionNumber 2>/dev/null |
		sed -n 's/^msDS-KeyVersionNumber: //p'
}

# decrypts KEYTAB SPN KVNO: a fresh ticket for SPN, issued by the DC at KVNO, decrypts
# with the keytab's key (kvno -k checks exactly that).
decrypts() {
	kdestroy -q -c "$KRB5CCNAME" 2>/dev/null
	kinit -k -t "$LAB/alice.keytab" alice@PROSEWARE.LAB >/dev/null 2>&1
	expect 0 "a ticket for $2 decrypts with the derived key" kvno -k "$1" "$2"
	out_has "kvno = $3" "the DC issued it at kvno $3"
}

expect 0 "create the ASA as a computer account" "$KASA" account create "$ASA" --computer
expect 0 "spn add http/outlook.proseware.lab" "$KASA" spn add http/outlook.proseware.lab "$ASA"
expect 0 "spn add exchangeMDB/outlook" "$KASA" spn add exchangeMDB/outlook "$ASA"
before=$(ad_kvno "$ASA")
check "AD has a kvno for the ASA" test -n "$before"
next=$((before + 1))
expect 0 "new keys for the ASA from a new password" \
	"$DIRTOOL" newkeys "$ASA" "$T_WORK/asa.keytab"
out_has "kvno $next: 2 keys for $ASA and 2 SPNs" "the keys are for kvno N+1"
check "AD holds kvno N+1 after the password" test "$(ad_kvno "$ASA")" = "$next"
decrypts "$T_WORK/asa.keytab" http/outlook.proseware.lab "$next"
decrypts "$T_WORK/asa.keytab" exchangeMDB/outlook "$next"
decrypts "$T_WORK/asa.keytab" HTTP/outlook.proseware.lab "$next"

expect 0 "create a user account with upper case in its name" \
	"$KASA" account create "$USER_ASA" --user
expect 0 "spn add http/svc.proseware.lab to it" "$KASA" spn add http/svc.proseware.lab "$USER_ASA"
next=$(($(ad_kvno "$USER_ASA") + 1))
expect 0 "new keys for the user from a new password" \
	"$DIRTOOL" newkeys "$USER_ASA" "$T_WORK/user.keytab"
out_has "kvno $next: 2 keys for $USER_ASA and 1 SPNs" "the keys are for kvno N+1"
decrypts "$T_WORK/user.keytab" http/svc.proseware.lab "$next"
# The name as typed is not the salt: AD's stored spelling is.
next=$(($(ad_kvno "$USER_ASA") + 1))
expect 0 "new keys for the user named in lower case" \
	"$DIRTOOL" newkeys svcarray "$T_WORK/user-lc.keytab"
decrypts "$T_WORK/user-lc.keytab" http/svc.proseware.lab "$next"

# A reset behind kasa's back between the key step and the commit: the kvno moves by two.
before=$(ad_kvno "$ASA")
expect 0 "a password reset behind kasa's back meanwhile is detected" \
	"$DIRTOOL" newkeys "$ASA" "$T_WORK/moved.keytab" \
	"samba-tool user setpassword '$ASA' --newpassword='Behind-kasas-back-1' -H '$SAM' >/dev/null"
err_has "not $((before + 1))" "kasa says the kvno is not the one it derived for"
out_has "moved from $((before + 1)) to $((before + 2))" "and the kvno AD holds"
decrypts "$T_WORK/moved.keytab" http/outlook.proseware.lab "$((before + 2))"

# key_set without the password is refused on AD: keys alone cannot be set there.
expect 1 "setting keys without a password is refused on AD" "$DIRTOOL" setkey "$ASA" 9
err_has "derives keys from passwords" "the refusal says why"
check "the refusal changed nothing" test "$(ad_kvno "$ASA")" = "$((before + 2))"

done_testing
