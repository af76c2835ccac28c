#!/bin/sh
# What an operator meets on AD, with 3 real members, works as on MIT: a password reset
# behind kasa's back between stage and commit (the roll sees AD's kvno moved and stages
# the keys again at it), kasa roll --resume after the controller was killed at each point
# of a roll, kasa roll --force with a member down and kasa copy to bring it back, and
# kasa diagnose calling the healthy array healthy. Each outcome is checked with AD's own
# msDS-KeyVersionNumber (ldbsearch on sam.ldb) and with tickets from Samba's KDC that
# every member's keytab must decrypt (MIT's kvno -k).
. "$(dirname "$0")/lib.sh"

ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
SPNS="http/outlook.proseware.lab exchangeMDB/outlook exchangeMDB/outlook.proseware.lab
	exchangeRFR/outlook.proseware.lab exchangeAB/outlook.proseware.lab HTTP/outlook"
N=3

lab_up --ad --members $N
SAM="$LAB/ad/private/sam.ldb"
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
lab() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T_WORK/lab.json" "$1"; }
keytab() { lab "d['members'][$1-1]['managed_keytab']"; }
BPORT=$(lab "d['balancer']['port']")

# ad_kvno: msDS-KeyVersionNumber of the ASA as AD itself holds it.
ad_kvno() {
	ldbsearch -H "$SAM" "(sAMAccountName=$ASA)" msDS-KeyVersionNumber 2>/dev/null |
		sed -n 's/^msDS-KeyVersionNumber: //p'
}

# holds I KVNO: cas I's keytab has entries at KVNO (klist -k).
holds() {
	klist -k "$(keytab "$1")" 2>/dev/null | grep -q "^ *$2 "
}

# all_staged KVNO: every member's keytab has entries at KVNO.
all_staged() {
	for i in $(seq $N); do
		holds "$i" "$1" || return 1
	done
}

# verdict NAME VERDICT: the last kasa status gives member NAME that verdict.
verdict() {
	printf '%s\n' "$T_OUT" | grep "$1.proseware.lab" | grep -qw "$2"
}

# decrypts KVNO MEMBERS: as alice, a fresh ticket for every SPN is issued at KVNO and
# decrypts with the keytab of each of MEMBERS (numbers).
decrypts() {
	at=$1
	shift
	kdestroy -q 2>/dev/null
	kinit -k -t "$LAB/alice.keytab" alice@PROSEWARE.LAB >/dev/null 2>&1
	for spn in $SPNS; do
		expect 0 "AD issues a ticket for $spn" kvno "$spn"
		out_has "kvno = $at" "at kvno $at"
		for i in "$@"; do
			expect 0 "cas$i's keytab decrypts it" kvno -k "$(keytab "$i")" "$spn"
		done
	done
}

# healthy KVNO: AD holds KVNO, every member decrypts fresh tickets at it, and kasa status
# and kasa verify say so.
healthy() {
	check "AD holds kvno $1 (msDS-KeyVersionNumber)" test "$(ad_kvno)" = "$1"
	decrypts "$1" $(seq $N)
	expect 0 "kasa status: every member OK" "$KASA" status $ARRAY
	out_has "directory kvno $1" "status reads kvno $1 from AD"
	expect 0 "kasa verify: every member accepts every SPN" "$KASA" verify $ARRAY
}

expect 0 "create the ASA as a computer account" "$KASA" account create "$ASA" --computer
for spn in $SPNS; do
	expect 0 "spn add $spn" "$KASA" spn add "$spn" "$ASA"
done
expect 0 "create the array" "$KASA" array create $ARRAY --asa "$ASA" --short-name outlook
for i in $(seq $N); do
	expect 0 "add cas$i as a member, with its HTTP port" "$KASA" array add-member $ARRAY \
		"cas$i.proseware.lab:$(lab "d['members'][$i-1]['port']")" \
		--address "$(lab "d['members'][$i-1]['address']")" \
		--http-port "$(lab "d['members'][$i-1]['http']['port']")"
done
expect 0 "a first roll" "$KASA" roll $ARRAY
healthy "$(ad_kvno)"

# 1. An admin resets the ASA's password in AD while the members hold the staged kvno N+1
# and before kasa sets its own: kasa's password lands at N+2.
before=$(ad_kvno)
touch "$T_WORK/hold"
KASA_TEST_HOLD_AT=staged KASA_TEST_HOLD_FILE="$T_WORK/hold" \
	"$KASA" roll $ARRAY >"$T_WORK/roll.out" 2>"$T_WORK/roll.err" &
roll=$!
for _ in $(seq 300); do
	all_staged $((before + 1)) && break
	sleep 0.1
done
check "every member staged kvno $((before + 1))" all_staged $((before + 1))
check "the roll waits before its commit" kill -0 $roll
check "AD still holds kvno $before" test "$(ad_kvno)" = "$before"
# The password goes through the environment, so no failure message can show it.
RESET_PW="Reset-$(openssl rand -hex 12)-A1"
export RESET_PW
expect 0 "reset the ASA's password in AD behind kasa's back (samba-tool)" \
	sh -c 'samba-tool user setpassword "$1" --newpassword="$RESET_PW" -H "$2"' - "$ASA" "$SAM"
unset RESET_PW
check "the reset moved AD to kvno $((before + 1))" test "$(ad_kvno)" = "$((before + 1))"
rm -f "$T_WORK/hold"
wait $roll
T_STATUS=$?
T_OUT=$(cat "$T_WORK/roll.out")
T_ERR=$(cat "$T_WORK/roll.err")
check "the roll ends with exit 0" test "$T_STATUS" -eq 0
err_has "holds it at kvno $((before + 2)), not $((before + 1))" \
	"the roll warns that AD holds its password at kvno $((before + 2)), not $((before + 1))"
err_has "the members get the same keys again" "and that it stages them again"
out_has "from kvno $before to kvno $((before + 2))" "the roll reports the kvno AD took"
healthy $((before + 2))

# 2. The controller killed at each point of a roll; kasa roll --resume finishes it.
# spns-committed is MIT's alone (AD's SPNs share the account's keys): no kill there.
before=$(ad_kvno)
expect 0 "on AD a roll passes spns-committed (MIT only)" \
	env KASA_TEST_KILL_AT=spns-committed "$KASA" roll $ARRAY
healthy $((before + 1))
for point in staged committed; do
	before=$(ad_kvno)
	expect 137 "the controller is killed at $point" \
		env KASA_TEST_KILL_AT=$point "$KASA" roll $ARRAY
	if [ $point = staged ]; then
		check "killed at staged: AD still holds kvno $before" test "$(ad_kvno)" = "$before"
	else
		check "killed at committed: AD holds kvno $((before + 1))" \
			test "$(ad_kvno)" = "$((before + 1))"
	fi
	expect 1 "status says the roll was interrupted" "$KASA" status $ARRAY
	out_has "INTERRUPTED" "INTERRUPTED"
	out_has "kasa roll --resume $ARRAY" "and how to finish it"
	expect 1 "a plain roll refuses to start over it" "$KASA" roll $ARRAY
	err_has "finish it with kasa roll --resume" "and says to resume"
	expect 0 "kasa roll --resume after a kill at $point" "$KASA" roll --resume $ARRAY
	healthy $((before + 1))
done

# 3. --force with cas2 down: AD commits, cas2 is marked stale, kasa copy brings it back.
before=$(ad_kvno)
next=$((before + 1))
expect 0 "stop cas2" "$KASA" lab member stop cas2 --dir "$LAB"
expect 3 "a forced roll with cas2 down exits 3" "$KASA" roll $ARRAY --force
err_has "committed kvno $next with --force; 1 member marked stale" "and says cas2 is marked stale"
check "AD holds kvno $next" test "$(ad_kvno)" = "$next"
decrypts $next 1 3
check "cas2's keytab lacks kvno $next" sh -c "! klist -k '$(keytab 2)' | grep -q '^ *$next '"
expect 0 "start cas2 again" "$KASA" lab member start cas2 --dir "$LAB"
expect 1 "kasa status: not all OK" "$KASA" status $ARRAY
check "cas2 is STALE" verdict cas2 STALE
check "cas1 is OK" verdict cas1 OK
check "cas3 is OK" verdict cas3 OK
expect 1 "cas2's keytab does not decrypt a ticket at kvno $next" \
	kvno -k "$(keytab 2)" http/outlook.proseware.lab
expect 0 "copy the keys from cas1 to cas2" "$KASA" copy $ARRAY \
	--from cas1.proseware.lab --to cas2.proseware.lab
healthy $next

# 3b. The same with cas3, brought back by kasa heal (what the timer runs): AD untouched.
next=$((next + 1))
expect 0 "stop cas3" "$KASA" lab member stop cas3 --dir "$LAB"
expect 3 "a forced roll with cas3 down exits 3" "$KASA" roll $ARRAY --force
expect 0 "start cas3 again" "$KASA" lab member start cas3 --dir "$LAB"
expect 1 "kasa status: not all OK" "$KASA" status $ARRAY
check "cas3 is STALE" verdict cas3 STALE
expect 0 "kasa heal" "$KASA" heal $ARRAY
out_has "healed cas3.proseware.lab: copied kvno $next" "says it healed cas3"
check "AD's kvno is unchanged by heal" test "$(ad_kvno)" = "$next"
healthy $next

# 4. kasa diagnose on the healthy AD array, through the balancer.
expect 0 "kasa diagnose: healthy" \
	"$KASA" diagnose $ARRAY --port "$BPORT" --address 127.0.0.10
out_has "healthy: clients using this name can use Kerberos" "says healthy"
out_has "authenticated with Kerberos" "the live request through the balancer used Kerberos"
for i in $(seq $N); do
	out_has "cas$i.proseware.lab accepts a ticket for HTTP/outlook.proseware.lab" \
		"cas$i is probed and accepts"
done

done_testing
