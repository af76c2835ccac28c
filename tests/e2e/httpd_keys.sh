#!/bin/sh
# kasa-httpd's keys in memory (issue 14): loaded from the array keytab when kasad writes
# it, used with no read of the file per request, reloaded at a roll; a keytab replaced by
# garbage, cut short, emptied or removed leaves the last good keys in use (logins go on)
# and the member's log says why; a good keytab again is loaded again. Real members, a
# real KDC, curl --negotiate as alice, klist -k to check the files.
. "$(dirname "$0")/lib.sh"

ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'

lab_up --members 1
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
jq1() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print(" + sys.argv[2] + ")")' "$T_WORK/lab.json" "$1"; }
"$KASA" account create "$ASA" --computer >/dev/null
"$KASA" spn add "HTTP/$ARRAY" "$ASA" >/dev/null
"$KASA" array create $ARRAY --asa "$ASA" >/dev/null
"$KASA" array add-member $ARRAY "cas1.proseware.lab:$(jq1 "d['members'][0]['port']")" \
	--address 127.0.0.11 >/dev/null
KT="$LAB/cas1/array.keytab"
HLOG="$LAB/cas1/httpd.log"
HPID=$(jq1 'd["members"][0]["http"]["pid"]')
HPORT=$(jq1 'd["members"][0]["http"]["port"]')
kinit -k -t "$LAB/alice.keytab" alice >/dev/null 2>&1

login() {
	curl -s --negotiate -u : --resolve "$ARRAY:$HPORT:127.0.0.11" "http://$ARRAY:$HPORT/whoami" \
		>"$T_WORK/who" 2>/dev/null
	grep -q "^alice@PROSEWARE.LAB Kerberos" "$T_WORK/who"
}
loads() { grep -c "keys loaded from $KT" "$HLOG" || true; }
# replace the keytab as a careless copy would: a new file renamed over it.
replace() { cat >"$KT.new" && chmod --reference="$KT" "$KT.new" 2>/dev/null; mv "$KT.new" "$KT"; }

expect 0 "roll" "$KASA" roll $ARRAY
check "the member loaded the rolled keytab into memory" \
	eventually grep -q "keys loaded from $KT: 4 entries, 2 principals, kvno up to 2" "$HLOG"
check "a Kerberos login is accepted" login
check "its SPN is the principal the keys hold" \
	grep -q '"HTTP/outlook.proseware.lab@PROSEWARE.LAB","Kerberos","2"' "$LAB/cas1/auth.log"

# No file is opened per request: strace counts kasa-httpd's opens over ten logins.
if command -v strace >/dev/null 2>&1; then
	strace -f -e trace=open,openat,recvfrom -o "$T_WORK/strace" -p "$HPID" 2>/dev/null &
	SPID=$!
	sleep 1
	for _ in 1 2 3 4 5 6 7 8 9 10; do login; done
	kill -INT "$SPID"
	wait "$SPID" 2>/dev/null || true
	check "strace saw the ten requests arrive" sh -c "test \$(grep -c recvfrom '$T_WORK/strace') -ge 10"
	check "ten logins open neither the keytab nor a replay cache file" sh -c \
		"! grep -E 'array.keytab|rcache' '$T_WORK/strace'"
else
	ok "# SKIP strace is not installed"
fi

cp -p "$KT" "$T_WORK/good.keytab"
SIZE=$(stat -c %s "$KT")
N=$(loads)

# Garbage: refused, said once, the last good keys stay.
printf 'this is not a keytab\n' | replace
check "garbage: the log says why it was refused" \
	eventually grep -q "is not a keytab (no keytab version at its start); keeping the last good keys" "$HLOG"
check "garbage: a Kerberos login is still accepted" login
check "garbage: said once" test "$(grep -c 'is not a keytab' "$HLOG")" = 1

# Cut short inside an entry (a crash while copying).
head -c $((SIZE - 7)) "$T_WORK/good.keytab" | replace
check "truncated: the log says so" \
	eventually grep -q "is truncated: an entry at byte .*; keeping the last good keys" "$HLOG"
check "truncated: a Kerberos login is still accepted" login

# Only the header: no keys.
printf '\005\002' | replace
check "no keys: the log says so" eventually grep -q "holds no keys; keeping the last good keys" "$HLOG"
check "no keys: a Kerberos login is still accepted" login

# Gone.
rm -f "$KT"
check "gone: the log says so" \
	eventually grep -q "the keytab $KT is gone; keeping the keys in memory" "$HLOG"
check "gone: a Kerberos login is still accepted" login
check "nothing was loaded from the bad files" test "$(loads)" = "$N"
check "kasa-httpd still runs" kill -0 "$HPID"

# The good keytab back: loaded again; a roll after it is loaded too, and used.
replace <"$T_WORK/good.keytab"
check "the good keytab back: loaded again" \
	eventually sh -c "test \"\$(grep -c 'keys loaded from $KT' '$HLOG')\" -gt $N"
expect 0 "roll again" "$KASA" roll $ARRAY
check "the roll's keytab: loaded" eventually grep -q "keys loaded from $KT: .* kvno up to 3" "$HLOG"
check "klist -k reads the member's keytab at kvno 3" sh -c "klist -k '$KT' | grep -q '^ *3 HTTP/outlook'"
kdestroy >/dev/null 2>&1
kinit -k -t "$LAB/alice.keytab" alice >/dev/null 2>&1
check "a fresh ticket, at the new kvno, is accepted" login
check "and the auth log shows kvno 3" \
	grep -q '"HTTP/outlook.proseware.lab@PROSEWARE.LAB","Kerberos","3"' "$LAB/cas1/auth.log"
check "the log never shows key material" sh -c "! grep -qi 'key:\|keyblock\|contents' '$HLOG'"

done_testing
