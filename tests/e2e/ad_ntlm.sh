#!/bin/sh
# NTLM on the AD lab is checked by the domain, as on a member joined to AD: the members'
# kasa-httpd have no NTLM user file, gss-ntlmssp asks the domain controller's winbindd,
# alice's AD password works through the balancer (raw NTLM and NTLM inside Negotiate, as
# a client without a ticket falls back), a wrong one is refused with a reason, and a
# password changed in AD behind kasa's back is what counts at the next login.
. "$(dirname "$0")/lib.sh"

ARRAY=outlook.proseware.lab
lab_up --ad --members 2
SAM="$LAB/ad/private/sam.ldb"
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
lab() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(" + sys.argv[2] + ")")' "$T_WORK/lab.json" "$1"; }
BPORT=$(lab 'd["balancer"]["port"]')
URL="http://$ARRAY:$BPORT/whoami"
RESOLVE="$ARRAY:$BPORT:127.0.0.10"
PW=$(cat "$LAB/alice.password")

# ntlm USER PASSWORD: curl --ntlm through the balancer; prints the code, keeps the body.
ntlm() {
	curl -s -o "$T_WORK/body" -w '%{http_code}' --max-time 20 --ntlm -u "$1:$2" \
		--resolve "$RESOLVE" "$URL"
}

for i in 1 2; do
	pid=$(lab "d['members'][$i-1]['http']['pid']")
	check "cas$i's kasa-httpd has no NTLM user file in its environment" \
		sh -c "! tr '\\0' '\\n' </proc/$pid/environ | grep -q '^NTLM_USER_FILE='"
	check "cas$i's kasa-httpd says the domain checks NTLM" \
		grep -q "NTLM logins are checked by the domain through winbindd" "$LAB/cas$i/httpd.log"
done
check "the AD lab has no NTLM user file at all" test ! -e "$LAB/ntlm.users"

for n in 1 2 3 4; do
	check "alice with her AD password, through the balancer ($n): 200" \
		test "$(ntlm 'PROSEWARE\alice' "$PW")" = 200
done
check "as PROSEWARE\\alice by NTLM" test "$(cat "$T_WORK/body")" = "PROSEWARE\\alice NTLM"
check "both members served alice by NTLM" sh -c "
	grep -q '\"PROSEWARE\\\\\\\\alice\",\"\",\"NTLM\",\"\",\"\",\"ok\"' '$LAB/cas1/auth.log' &&
	grep -q '\"PROSEWARE\\\\\\\\alice\",\"\",\"NTLM\",\"\",\"\",\"ok\"' '$LAB/cas2/auth.log'"

check "a wrong password: 401" test "$(ntlm 'PROSEWARE\alice' wrong)" = 401
check "logged for alice as refused by the domain" \
	sh -c "cat '$LAB'/cas*/auth.log | grep -q '\"PROSEWARE\\\\\\\\alice\",.*\"failed\",\"NTLM: refused by the domain'"
check "an unknown user: 401" test "$(ntlm 'PROSEWARE\mallory' "$PW")" = 401
check "logged for mallory" sh -c "cat '$LAB'/cas*/auth.log | grep -q '\"PROSEWARE\\\\\\\\mallory\",.*\"failed\",\"NTLM: refused'"

# NTLM inside Negotiate: a client with no ticket (no SPN for the name yet, as in the seed
# before the ASA) falls back to NTLM with alice's AD password (the client's own
# credential file; the members still have none).
printf 'PROSEWARE:alice:%s\n' "$PW" >"$T_WORK/client.users"
chmod 600 "$T_WORK/client.users"
expect 0 "Negotiate without a ticket falls back to NTLM through the balancer" env \
	NTLM_USER_FILE="$T_WORK/client.users" KRB5CCNAME="FILE:$T_WORK/none.cc" \
	curl -s --max-time 20 --negotiate -u : --resolve "$RESOLVE" "$URL"
check "served as PROSEWARE\\alice by NTLM" test "$T_OUT" = "PROSEWARE\\alice NTLM"

# The domain decides: a new password set in AD with Samba's own tool (not through kasa)
# works at the next login, with no file on any member changed. (The old one is still
# accepted for a while: AD lets NTLM network logons use the previous password for the
# "old password allowed period", 60 minutes in Samba.)
NEWPW="Kasa-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')!Z"
expect 0 "samba-tool sets a new password for alice" \
	samba-tool user setpassword alice --newpassword="$NEWPW" -H "$SAM"
check "the new one works through the balancer" test "$(ntlm 'PROSEWARE\alice' "$NEWPW")" = 200
check "a password alice never had is still refused" test "$(ntlm 'PROSEWARE\alice' "${NEWPW}x")" = 401

done_testing
