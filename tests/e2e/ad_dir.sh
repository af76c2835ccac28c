#!/bin/sh
# The AD directory backend on a real Samba AD DC (kasa lab up --ad): accounts, SPNs with
# AD's case-insensitive uniqueness (also against an SPN added behind kasa's back with
# samba-tool), hostile names, and a domain controller that cannot be reached. AD's own
# view is read from the DC's sam.ldb with samba-tool and ldbsearch.
. "$(dirname "$0")/lib.sh"

ASA='CASARRAY-ASA$'

lab_up --ad
SAM=$(find "$LAB" -path '*private/sam.ldb' | head -n 1)
check "the lab has a domain database" test -n "$SAM"

expect 0 "create the ASA as a computer account" \
	"$KASA" account create "$ASA" --computer --description "ASA for outlook.proseware.lab"
out_has 'CASARRAY-ASA$@PROSEWARE.LAB' "create names the principal"
run ldbsearch -H "$SAM" '(sAMAccountName=CASARRAY-ASA$)' userAccountControl \
	msDS-SupportedEncryptionTypes msDS-KeyVersionNumber
out_has "userAccountControl: 4096" "AD holds a workstation trust account"
out_has "msDS-SupportedEncryptionTypes: 24" "AD holds AES-only enctypes"

expect 0 "account show says AES only" "$KASA" account show "$ASA"
out_has "Encryption:   AES256 AES128 (msDS-SupportedEncryptionTypes 24)" "in words"

# dNSHostName, when given, for a computer account only; a bad one changes nothing.
expect 0 "a computer account with --dns-host-name" "$KASA" account create 'WEB-ASA$' --computer \
	--dns-host-name web-asa.proseware.lab
run ldbsearch -H "$SAM" '(sAMAccountName=WEB-ASA$)' dNSHostName
out_has "dNSHostName: web-asa.proseware.lab" "AD holds the dNSHostName"
expect 0 "account show gives it" "$KASA" account show 'WEB-ASA$' --json
check "as dns_host_name in JSON" test "$(json dns_host_name)" = web-asa.proseware.lab
expect 0 "delete it" "$KASA" account delete 'WEB-ASA$'
expect 2 "--dns-host-name that is not a host name" "$KASA" account create 'BAD-ASA$' --computer \
	--dns-host-name 'web*(x)'
err_has "not a valid DNS host name" "says why"
err_one_line "in one line"
expect 2 "--dns-host-name on a user account" "$KASA" account create bad-asa --user \
	--dns-host-name web.proseware.lab
err_has "only a computer account has a DNS host name" "says why"
run ldbsearch -H "$SAM" '(|(sAMAccountName=BAD-ASA$)(sAMAccountName=bad-asa))' dn
check "neither was created" sh -c "! printf '%s' \"\$1\" | grep -q '^dn:'" sh "$T_OUT"

expect 1 "creating it twice is refused" "$KASA" account create "$ASA" --computer
err_has "already exists" "the refusal says it exists"
err_one_line "the refusal is one line"
expect 0 "account show" "$KASA" account show "$ASA"
out_has "computer" "show gives the kind"
out_has "ASA for outlook.proseware.lab" "show gives the description"
expect 0 "account list" "$KASA" account list
out_has "$ASA" "list shows the ASA"
expect 1 "Administrator is not kasa's" "$KASA" account show Administrator
err_has "does not manage" "the refusal says kasa does not manage it"

expect 0 "spn add http/outlook.proseware.lab" "$KASA" spn add http/outlook.proseware.lab "$ASA"
expect 0 "spn add exchangeMDB/outlook" "$KASA" spn add exchangeMDB/outlook "$ASA"
run samba-tool spn list "$ASA" -H "$SAM"
out_has "http/outlook.proseware.lab" "samba-tool sees the SPN on the ASA"
expect 0 "HTTP/ in upper case on the same ASA: one SPN on AD" \
	"$KASA" spn add HTTP/outlook.proseware.lab "$ASA"
err_has "nothing to do" "it says there is nothing to do"
expect 0 "spn query HTTP/ finds the ASA's http/ (AD gives its tickets to that owner)" \
	"$KASA" spn query HTTP/outlook.proseware.lab
out_has 'CASARRAY-ASA$' "names the ASA"
run samba-tool spn add HTTP/outlook.proseware.lab Administrator -H "$SAM"
check "samba-tool refuses HTTP/ in upper case for another owner too" test "$T_STATUS" -ne 0
expect 0 "spn list" "$KASA" spn list "$ASA"
check "spn list shows the two SPNs" \
	test "$T_OUT" = "$(printf 'exchangeMDB/outlook\nhttp/outlook.proseware.lab\n')"
expect 0 "spn query" "$KASA" spn query http/outlook.proseware.lab
out_has "$ASA" "query names the owner"

expect 0 "samba-tool adds an SPN to Administrator behind kasa's back" \
	samba-tool spn add exchangeRFR/outlook.proseware.lab Administrator -H "$SAM"
expect 1 "spn add of that SPN is refused" \
	"$KASA" spn add exchangeRFR/outlook.proseware.lab "$ASA"
err_has "Administrator" "the refusal names its holder"
err_one_line "the refusal is one line"
expect 1 "spn add of it in other case is refused" \
	"$KASA" spn add EXCHANGERFR/OUTLOOK.proseware.lab "$ASA"
err_has "differs only by case" "the refusal says why"
expect 1 "spn add of a DC's SPN (host/DC1, held as HOST/DC1) is refused" "$KASA" spn add host/DC1 "$ASA"
expect 0 "spn duplicates finds none" "$KASA" spn duplicates

for bad in 'CASARRAY-*$' 'x)(sAMAccountName=*' 'a\2a$'; do
	expect 2 "account show '$bad' is refused" "$KASA" account show "$bad"
	err_one_line "the refusal of '$bad' is one line"
done
for bad in 'http/*' 'http/x)(servicePrincipalName=*' 'http/a\2a'; do
	expect 2 "spn query '$bad' is refused" "$KASA" spn query "$bad"
	err_one_line "the refusal of '$bad' is one line"
done

expect 1 "account delete refuses while SPNs remain" "$KASA" account delete "$ASA"
expect 0 "spn delete" "$KASA" spn delete exchangeMDB/outlook "$ASA"
expect 0 "account delete --force" "$KASA" account delete "$ASA" --force
run ldbsearch -H "$SAM" '(sAMAccountName=CASARRAY-ASA$)' dn
check "AD no longer holds the ASA" sh -c "! printf '%s' \"\$1\" | grep -q '^dn:'" sh "$T_OUT"

# Names with LDAP filter metacharacters never reach a filter: they are refused (exit 2,
# as every invalid argument); what does reach one is escaped (tests/unit/test_ldapescape.c).
# A DC that cannot be reached: a port where nothing listens.
sed 's#^\([[:space:]]*ldap_uri = ldap://[^:/]*\).*#\1:1#' "$KASA_CONFIG" >"$T_WORK/down.conf"
expect 1 "a DC that is down gives exit 1" "$KASA" -c "$T_WORK/down.conf" account list
err_has "cannot reach the LDAP server" "the error says the server cannot be reached"
err_one_line "the error is one line"
sed 's#^\([[:space:]]*keytab = \).*#\1/nonexistent.keytab#' "$KASA_CONFIG" >"$T_WORK/noauth.conf"
expect 1 "a credential that cannot bind gives exit 1" "$KASA" -c "$T_WORK/noauth.conf" account list
err_one_line "the error is one line"

done_testing
