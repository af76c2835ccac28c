#!/bin/sh
# kasa diagnose finds each fault planted in a healthy array, one at a time, says how to
# fix it, and calls the healthy name healthy.
. "$(dirname "$0")/lib.sh"

: "${KASAD:?}"
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
lab_up --members 2
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
m() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1][sys.argv[3]])' "$T_WORK/lab.json" "$1" "$2"; }
mh() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1]["http"]["port"])' "$T_WORK/lab.json" "$1"; }
out_lacks() {
	case "$T_OUT" in
	*"$1"*) not_ok "$2" "stdout has: $1" "stdout: $T_OUT" ;;
	*) ok "$2" ;;
	esac
}
BPORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["balancer"]["port"])' "$T_WORK/lab.json")
diag() { "$KASA" diagnose "$1" --port "$BPORT" --address 127.0.0.10; }

expect 1 "before the ASA: not healthy" diag $ARRAY
out_has "no account owns HTTP/outlook.proseware.lab" "names the missing SPN"
out_has "fall back to NTLM" "explains the NTLM fallback"
out_has "fix: kasa spn add HTTP/outlook.proseware.lab" "and the fix"
out_has "a client gets no Kerberos ticket" "the live request could not use Kerberos"

expect 0 "create the ASA" "$KASA" account create "$ASA" --computer
for spn in http/outlook.proseware.lab HTTP/outlook.proseware.lab exchangeMDB/outlook.proseware.lab \
	exchangeRFR/outlook.proseware.lab exchangeAB/outlook.proseware.lab HTTP/outlook exchangeMDB/outlook; do
	"$KASA" spn add "$spn" "$ASA" >/dev/null 2>&1
done
expect 0 "create the array" "$KASA" array create $ARRAY --asa "$ASA" --short-name outlook
for i in 1 2; do
	"$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(m $i port)" --address "127.0.0.1$i" --http-port "$(mh $i)" >/dev/null
done
expect 0 "roll" "$KASA" roll $ARRAY
expect 0 "a healthy name is called healthy" diag $ARRAY
out_has "healthy: clients using this name can use Kerberos" "says healthy"
out_has "authenticated with Kerberos" "the live request used Kerberos"
out_has "cas1.proseware.lab accepts a ticket for HTTP/outlook.proseware.lab" "each member is probed: cas1"
out_has "cas2.proseware.lab accepts a ticket for HTTP/outlook.proseware.lab" "each member is probed: cas2"
expect 0 "diagnose --json" "$KASA" diagnose $ARRAY --json
check "healthy in JSON" test "$(json healthy)" = True

# A missing SPN.
expect 0 "take HTTP/ away" "$KASA" spn delete HTTP/outlook.proseware.lab "$ASA"
expect 1 "missing SPN" diag $ARRAY
out_has "clients ask for HTTP/outlook.proseware.lab, but only http/outlook.proseware.lab exists" "says which spelling exists"
out_has "fix: kasa spn add HTTP/outlook.proseware.lab CASARRAY-ASA\$" "with the fix"
expect 0 "put it back" "$KASA" spn add HTTP/outlook.proseware.lab "$ASA"

# A duplicate SPN, planted behind kasa's back.
kadmin_local 'addprinc -randkey EXCHANGEMDB/outlook.proseware.lab' >/dev/null
expect 1 "duplicate SPN" diag $ARRAY
out_has "is also claimed as EXCHANGEMDB/outlook.proseware.lab" "names the rival"
kadmin_local 'delprinc -force EXCHANGEMDB/outlook.proseware.lab' >/dev/null

# An SPN on the wrong account.
expect 0 "another account" "$KASA" account create 'OTHER$' --computer
expect 0 "move exchangeRFR/ to it" sh -c "'$KASA' spn delete exchangeRFR/outlook.proseware.lab '$ASA' && '$KASA' spn add exchangeRFR/outlook.proseware.lab 'OTHER\$'"
expect 1 "SPN on the wrong account" diag $ARRAY
out_has "belongs to OTHER\$, not to the array's ASA CASARRAY-ASA\$" "says whose it is and whose it should be"
expect 0 "move it back" sh -c "'$KASA' spn delete exchangeRFR/outlook.proseware.lab 'OTHER\$' && '$KASA' spn add exchangeRFR/outlook.proseware.lab '$ASA'"

# A stale member: cas2 misses a roll.
expect 0 "stop cas2" "$KASA" lab member stop cas2 --dir "$LAB"
expect 3 "a forced roll leaves cas2 behind" "$KASA" roll $ARRAY --force
expect 0 "start cas2" "$KASA" lab member start cas2 --dir "$LAB"
expect 1 "stale member" diag $ARRAY
out_has "cas2.proseware.lab is STALE" "names the stale member"
out_has "fix: kasa copy outlook.proseware.lab --from cas1.proseware.lab --to cas2.proseware.lab" "the fix copies from a real, healthy member"
out_has "cas2.proseware.lab rejects a ticket for HTTP/outlook.proseware.lab" "the probe of cas2 fails"
out_has "clients get 401" "and says clients get 401"
out_lacks "A-HEALTHY-MEMBER" "no placeholder for the member"
expect 0 "copy repairs it" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab
expect 0 "healthy again" diag $ARRAY

# A skewed member clock, faked with kasad --clock-offset (not the system clock).
expect 0 "stop cas2" "$KASA" lab member stop cas2 --dir "$LAB"
D2="$LAB/cas2"
"$KASAD" --foreground --listen 127.0.0.12 --port "$(m 2 port)" --keytab "$D2/host.keytab" \
	--principal host/cas2.proseware.lab@PROSEWARE.LAB --managed-keytab "$D2/array.keytab" \
	--acl "$D2/acl" --log "$T_WORK/skew.log" --clock-offset 900 &
SKEWED=$!
sleep 0.5
expect 1 "skewed clock" diag $ARRAY
# 900 give or take the time status takes to ask the members.
check "names the member and the skew" sh -c 'printf "%s\n" "$1" | grep -Eq "cas2.proseware.lab.s clock is (89[0-9]|90[0-9]) seconds off"' - "$T_OUT"
kill "$SKEWED"
wait "$SKEWED" 2>/dev/null
expect 0 "start cas2 again" "$KASA" lab member start cas2 --dir "$LAB"

# The name as an alias of another, in a hosts file only this test's processes see
# (nss_wrapper; never the machine's /etc/hosts). Browsers and MIT's default krb5.conf ask
# for HTTP/lb1.proseware.lab, whatever the lab's krb5.conf says. (Without DEEPBIND, which
# the sanitizers refuse; ASan must also be told it is not first in the library list.)
printf '127.0.0.1 localhost\n127.0.0.10 lb1.proseware.lab outlook.proseware.lab\n' >"$T_WORK/hosts"
adiag() {
	env LD_PRELOAD=libnss_wrapper.so NSS_WRAPPER_HOSTS="$T_WORK/hosts" NSS_WRAPPER_DISABLE_DEEPBIND=1 \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$KASA" diagnose "$1" --port "$BPORT"
}
expect 1 "an alias that changes the SPN is not healthy" adiag $ARRAY
out_has "outlook.proseware.lab is an alias of lb1.proseware.lab" "names the canonical name"
out_has "ask for HTTP/lb1.proseware.lab, which no account owns" "names the SPN clients ask for"
out_has "fix: kasa spn add HTTP/lb1.proseware.lab CASARRAY-ASA\$, then kasa roll outlook.proseware.lab" "fix one: an SPN for the canonical name, on the real ASA"
out_has "DisableAuthNegotiateCnameLookup" "fix two: Chromium's policy"
out_has "dns_canonicalize_hostname = false" "and krb5.conf"
out_has "no Kerberos ticket for HTTP/lb1.proseware.lab@PROSEWARE.LAB" "the live request as a canonicalizing client makes it"
out_lacks " ASA\$" "no placeholder for the ASA"
expect 0 "add the canonical name's SPN" "$KASA" spn add HTTP/lb1.proseware.lab "$ASA"
expect 0 "roll, so the members hold its key" "$KASA" roll $ARRAY
expect 0 "the alias is healthy now" adiag $ARRAY
out_has "ask for HTTP/lb1.proseware.lab, which belongs to CASARRAY-ASA\$, the array's ASA" "the alias finding is OK"
out_has "cas2.proseware.lab accepts a ticket for HTTP/lb1.proseware.lab" "members accept the canonical name's tickets"

# Keys changed in the KDC behind kasa's back: tickets are issued, but no member can decrypt
# them. Clients get 401 (not NTLM), and there is no healthy member to copy from.
kadmin_local 'cpw -randkey HTTP/outlook.proseware.lab' >/dev/null
expect 1 "keys wrong on every member" diag $ARRAY
out_has "cas1.proseware.lab rejects a ticket for HTTP/outlook.proseware.lab" "cas1 rejects the ticket"
out_has "cas2.proseware.lab rejects a ticket for HTTP/outlook.proseware.lab" "cas2 rejects the ticket"
out_has "clients get 401" "says clients get 401"
out_lacks "fall back to NTLM" "not NTLM fallback"
out_has "fix: kasa roll outlook.proseware.lab" "advises a roll"
out_lacks "kasa copy" "not a copy from a member"
out_has "changed behind kasa's back" "says the KDC's keys changed behind kasa's back"
expect 0 "the advised roll" "$KASA" roll $ARRAY
expect 0 "healthy after the roll" diag $ARRAY

expect 2 "diagnose without a name" "$KASA" diagnose
expect 2 "diagnose a malformed name" "$KASA" diagnose "out look"
expect 2 "diagnose with a bad port" "$KASA" diagnose $ARRAY --port 0

done_testing
