#!/bin/sh
# The roll on AD with real members: kasa lab up --ad --members 3 gives each member a
# computer account and a host keytab from the domain, then the seed's ASA and SPNs, an
# array, and rolls, checked with MIT's klist -k and kvno against Samba's KDC and with
# msDS-KeyVersionNumber read from AD's own database. A member down leaves AD's kvno as
# it was. The members share their replay cache in the lab's Redis: a Kerberos login one
# member accepted (with the keys in memory, for an SPN AD holds in lower case) is refused
# when replayed to another.
. "$(dirname "$0")/lib.sh"

ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
SPNS="http/outlook.proseware.lab HTTP/outlook.proseware.lab exchangeMDB/outlook exchangeMDB/outlook.proseware.lab"
N=3

lab_up --ad --members $N --replay redis
SAM="$LAB/ad/private/sam.ldb"
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
member() { python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1]; print(m[sys.argv[3]])' "$T_WORK/lab.json" "$1" "$2"; }

# ad_kvno NAME: msDS-KeyVersionNumber as AD itself holds it.
ad_kvno() {
	ldbsearch -H "$SAM" "(sAMAccountName=$1)" msDS-KeyVersionNumber 2>/dev/null |
		sed -n 's/^msDS-KeyVersionNumber: //p'
}

# every_member_decrypts KVNO: as alice, a fresh ticket for every SPN is issued at KVNO
# and decrypts with every member's keytab.
every_member_decrypts() {
	kdestroy -q 2>/dev/null
	kinit -k -t "$LAB/alice.keytab" alice@PROSEWARE.LAB >/dev/null 2>&1
	for spn in $SPNS; do
		expect 0 "AD issues a ticket for $spn" kvno "$spn"
		out_has "kvno = $1" "at kvno $1"
		for i in $(seq $N); do
			expect 0 "cas$i's keytab decrypts it" kvno -k "$(member $i managed_keytab)" "$spn"
		done
	done
}

expect 0 "lab status: samba, $N members and the balancer run" "$KASA" lab status --dir "$LAB"
out_has "cas$N kasad" "the members are in lab status"
check "cas1 has a host keytab from the domain with host/cas1.proseware.lab in it" \
	sh -c "klist -k '$(member 1 host_keytab)' | grep -q host/cas1.proseware.lab@PROSEWARE.LAB"
check "cas1's kasad ACL trusts the domain's Administrator" \
	grep -qx 'Administrator@PROSEWARE.LAB' "$(member 1 acl)"
check "no NTLM user file in the AD lab" test ! -e "$LAB/ntlm.users"

expect 0 "create the ASA as a computer account" "$KASA" account create "$ASA" --computer
for spn in http/outlook.proseware.lab exchangeMDB/outlook exchangeMDB/outlook.proseware.lab; do
	expect 0 "spn add $spn" "$KASA" spn add "$spn" "$ASA"
done
expect 0 "create the array" "$KASA" array create $ARRAY --asa "$ASA" --short-name outlook
for i in $(seq $N); do
	expect 0 "add cas$i as a member" "$KASA" array add-member $ARRAY \
		"cas$i.proseware.lab:$(member $i port)" --address "$(member $i address)"
done
expect 1 "status before any roll: members hold nothing" "$KASA" status $ARRAY
out_has "MISSING" "and says MISSING"

before=$(ad_kvno "$ASA")
next=$((before + 1))
start=$(date +%s%N)
expect 0 "roll to $N members on AD, verbose" "$KASA" roll $ARRAY -v
ms=$((($(date +%s%N) - start) / 1000000))
echo "# the roll to $N AD members took $ms ms"
out_has "from kvno $before to kvno $next" "the roll says the kvnos"
check "AD holds kvno N+1 (msDS-KeyVersionNumber)" test "$(ad_kvno "$ASA")" = "$next"
for i in $(seq $N); do
	check "cas$i's keytab holds kvno $next (klist -k)" \
		sh -c "klist -k '$(member $i managed_keytab)' | grep -q '^ *$next '"
done
every_member_decrypts "$next"
expect 0 "status: all OK" "$KASA" status $ARRAY
expect 0 "kasa verify" "$KASA" verify $ARRAY

# A second roll keeps the previous kvno on every member.
prev=$next
next=$((prev + 1))
expect 0 "a second roll" "$KASA" roll $ARRAY
check "AD holds kvno $next" test "$(ad_kvno "$ASA")" = "$next"
for i in $(seq $N); do
	check "cas$i keeps kvno $prev beside $next" sh -c \
		"klist -k '$(member $i managed_keytab)' | grep -q '^ *$prev ' && klist -k '$(member $i managed_keytab)' | grep -q '^ *$next '"
done
every_member_decrypts "$next"
expect 0 "status: all OK after the second roll" "$KASA" status $ARRAY

# Kerberos logins on AD: the members' kasa-httpd hold the keys in memory, find the key of
# http/outlook (as AD holds it) for a ticket to HTTP/outlook (as curl asks), and share
# one replay cache in Redis.
HP1=$(member 1 http | python3 -c 'import ast,sys; print(ast.literal_eval(sys.stdin.read())["port"])')
HP2=$(member 2 http | python3 -c 'import ast,sys; print(ast.literal_eval(sys.stdin.read())["port"])')
kdestroy -q 2>/dev/null
kinit -k -t "$LAB/alice.keytab" alice@PROSEWARE.LAB >/dev/null 2>&1
curl -s -v --negotiate -u : --resolve "$ARRAY:$HP1:$(member 1 address)" "http://$ARRAY:$HP1/whoami" \
	>"$T_WORK/who" 2>"$T_WORK/v.err"
check "cas1 accepts alice by Kerberos" grep -q "^alice@PROSEWARE.LAB Kerberos" "$T_WORK/who"
check "a ticket to HTTP/outlook at kvno $next" \
	grep -q "\"HTTP/outlook.proseware.lab@PROSEWARE.LAB\",\"Kerberos\",\"$next\"" "$LAB/cas1/auth.log"
check "where the keytab names it http/outlook, as AD holds it" sh -c \
	"klist -k '$(member 1 managed_keytab)' | grep -q ' http/outlook.proseware.lab@' &&
	 ! klist -k '$(member 1 managed_keytab)' | grep -q ' HTTP/outlook.proseware.lab@'"
check "cas1 loaded its keys into memory" grep -q "keys loaded from $(member 1 managed_keytab)" "$LAB/cas1/httpd.log"
TOKEN=$(sed -n 's/^> Authorization: \(Negotiate .*\)\r*$/\1/p' "$T_WORK/v.err" | tr -d '\r' | head -1)
check "the same token replayed to cas2: 401" test "$(curl -s -o /dev/null -w '%{http_code}' \
	--resolve "$ARRAY:$HP2:$(member 2 address)" -H "Authorization: $TOKEN" "http://$ARRAY:$HP2/whoami")" = 401
check "cas2 says the array's replay cache saw it" \
	grep -q "Request is a replay (the array's replay cache: seen by a member before)" "$LAB/cas2/auth.log"

# The ASA's keys are kasa's alone: Change Password is denied to SELF and Everyone on it
# (AD's "User cannot change password"), so a copy of a member's keytab cannot change the
# ASA's password through kpasswd; kasa's own resets go on working.
# ldbsearch folds long LDIF lines: unfold them.
run sh -c "ldbsearch -H '$SAM' '(sAMAccountName=$ASA)' nTSecurityDescriptor | sed -e ':a' -e 'N' -e '\$!ba' -e 's/\\n //g'"
out_has "(OD;;CR;ab721a53-1e2f-11d0-9819-00aa0040529b;;PS)" "AD denies SELF Change Password on the ASA"
out_has "(OD;;CR;ab721a53-1e2f-11d0-9819-00aa0040529b;;WD)" "and Everyone"
check "once each, after two rolls" test "$(printf '%s' "$T_OUT" | grep -o 'OD;;CR;ab721a53-1e2f-11d0-9819-00aa0040529b;;PS' | wc -l)" -eq 1
cp "$(member 1 managed_keytab)" "$T_WORK/copy.keytab"
expect 1 "kpasswd with the ASA's keys from a member's keytab is refused" \
	python3 "$(dirname "$0")/kpasswd_keytab.py" "$T_WORK/copy.keytab" "$ASA@PROSEWARE.LAB"
out_has "Not permitted to change password" "by the DC"
check "AD's kvno is unchanged" test "$(ad_kvno "$ASA")" = "$next"
expect 0 "status: all OK" "$KASA" status $ARRAY

# A member down: nothing is committed in AD.
expect 0 "stop cas2" "$KASA" lab member stop cas2 --dir "$LAB"
expect 1 "lab status says a member is down" "$KASA" lab status --dir "$LAB"
expect 3 "a roll with cas2 down exits 3" "$KASA" roll $ARRAY
check "AD's kvno is unchanged" test "$(ad_kvno "$ASA")" = "$next"
expect 0 "start cas2 again" "$KASA" lab member start cas2 --dir "$LAB"
expect 0 "lab status: all run again" "$KASA" lab status --dir "$LAB"
expect 0 "status: all OK with cas2 back" "$KASA" status $ARRAY

done_testing
