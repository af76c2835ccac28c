#!/bin/sh
# The array's keys stay right (issue 11): one roll at a time across controllers (a lock
# in the directory), a keep window from the realm's ticket lifetime, status that compares
# keys (WRONG-KEY), tells of an interrupted roll and of keys changed outside kasa, and
# still reports what members hold when kadmind is down.
. "$(dirname "$0")/lib.sh"

: "${KASAD:?}"
export KASAD
HERE=$(dirname "$0")
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
SPNS="HTTP/outlook.proseware.lab exchangeMDB/outlook"

# shellcheck disable=SC2086 # the SPNs, one word each
array_up 2 "$ASA" $ARRAY $SPNS
expect 0 "a first roll" "$KASA" roll $ARRAY
dir_kvno() { kadmin_local "getprinc $ASA" | sed -n 's/.*Key: vno \([0-9]*\),.*/\1/p' | head -1; }
fresh() { kdestroy >/dev/null 2>&1; kinit -k -t "$LAB/alice.keytab" alice; }
# every member's keytab decrypts a fresh ticket for every SPN (MIT's kvno -k)
all_decrypt() {
	fresh
	for i in 1 2; do
		for spn in $SPNS; do
			kvno -k "$(member $i managed_keytab)" "$spn" >/dev/null 2>&1 || return 1
		done
	done
}

# race P1 P2 ROLL-ARGS...: two `kasa roll ROLL-ARGS` at once, each waiting 1.5 s once it
# holds the lock (KASA_TEST_HOLD_AT), so they always meet: exactly one may win, the kvno
# moves by one, every member decrypts every SPN, and what the runs said matches the glob
# P1 or P2. Counts what went wrong in bad.
race() {
	p1=$1 p2=$2
	shift 2
	before=$(dir_kvno)
	KASA_TEST_HOLD_AT=locked "$KASA" roll "$@" >"$T_WORK/a.out" 2>"$T_WORK/a.err" &
	A=$!
	KASA_TEST_HOLD_AT=locked "$KASA" roll "$@" >"$T_WORK/b.out" 2>"$T_WORK/b.err" &
	B=$!
	wait $A; sa=$?
	wait $B; sb=$?
	after=$(dir_kvno)
	won=$(( (sa == 0) + (sb == 0) ))
	msg=$(cat "$T_WORK/a.err" "$T_WORK/b.err")
	if [ "$won" -ne 1 ] || [ "$after" -ne $((before + 1)) ] || ! all_decrypt; then
		bad=$((bad + 1))
		echo "# round $round: exits $sa $sb, kvno $before -> $after: $msg"
	fi
	# shellcheck disable=SC2254 # the patterns are globs
	case $msg in $p1 | $p2) ;; *) bad=$((bad + 1)); echo "# round $round: $msg" ;; esac
}

# Two rolls at once, ten times: one commits, the other is told who holds the lock: this
# host, a pid, and the time it took the lock.
bad=0
won_by="*a roll of $ARRAY is running on $(hostname) pid [0-9]* since 20[0-9][0-9]-*"
for round in $(seq 10); do
	race "$won_by" "$won_by" $ARRAY
done
check "10 rounds of two rolls at once: one committed each time, every member decrypts every SPN" test "$bad" -eq 0

# A roll racing a copy.
KASA_TEST_HOLD_AT=locked "$KASA" roll $ARRAY >/dev/null 2>"$T_WORK/r.err" &
R=$!
sleep 0.5
expect 1 "a copy while a roll holds the lock" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab
err_has "a roll of $ARRAY is running on" "names the roll that holds it"
wait $R
check "the roll went through" test $? -eq 0
check "and every member decrypts every SPN" all_decrypt

# A controller killed while holding the lock: the lock outlives it.
KASA_TEST_KILL_AT=locked "$KASA" roll $ARRAY >/dev/null 2>&1
check "the controller was killed holding the lock" test $? -eq 137
expect 1 "a plain roll after it says to resume" "$KASA" roll $ARRAY
err_has "stopped before it ended" "that the last run stopped"
err_has "kasa roll --resume $ARRAY" "and how to finish"
before=$(dir_kvno)
expect 0 "--resume takes the lock over (its holder, on this host, is gone)" "$KASA" roll --resume $ARRAY
err_has "its process is gone" "saying why it could"
check "and does the roll that died before it staged anything" test "$(dir_kvno)" -eq $((before + 1))
# A controller on another host (its own UTS namespace and host name) SIGKILLed holding the
# lock: held until the lock expires, then --resume takes it over. The expiry is moved to
# the past in the directory instead of waiting lock_timeout (10 minutes at least).
unshare --uts sh -c 'hostname ctl2.proseware.lab && KASA_TEST_KILL_AT=locked exec "$0" roll "$1"' "$KASA" $ARRAY >/dev/null 2>&1
check "the other host's controller was killed holding the lock" test $? -eq 137
expect 1 "--resume waits for the lock of a live-looking holder elsewhere" "$KASA" roll --resume $ARRAY
err_has "is running on ctl2.proseware.lab pid " "naming that host"
kadmin_local "setstr kasa-lock/$ARRAY kasa.expires $(($(date +%s) - 1))" >/dev/null
before=$(dir_kvno)
expect 0 "once it expired, --resume takes it over" "$KASA" roll --resume $ARRAY
err_has "took over the lock of $ARRAY left by ctl2.proseware.lab pid " "and says from whom"
err_has "its lock expired at" "and why"
check "and rolls once" test "$(dir_kvno)" -eq $((before + 1))
# A lock from another host: held until it expires, then --resume takes it over.
now=$(date +%s)
kadmin_local "addprinc -nokey kasa-lock/$ARRAY" >/dev/null
kadmin_local "setstr kasa-lock/$ARRAY kasa.kind lock" >/dev/null
kadmin_local "setstr kasa-lock/$ARRAY kasa.owner \"cas0.proseware.lab pid 4242\"" >/dev/null
kadmin_local "setstr kasa-lock/$ARRAY kasa.operation roll" >/dev/null
kadmin_local "setstr kasa-lock/$ARRAY kasa.taken $((now - 60))" >/dev/null
kadmin_local "setstr kasa-lock/$ARRAY kasa.expires $((now + 600))" >/dev/null
expect 1 "a roll while another host holds the lock" "$KASA" roll $ARRAY
err_has "is running on cas0.proseware.lab pid 4242 since" "names that host"
expect 1 "--resume does not take a lock that has not expired" "$KASA" roll --resume $ARRAY
expect 0 "status shows the roll in progress (not a failure: it may end well)" "$KASA" status $ARRAY
out_has "in progress: a roll of $ARRAY is running on cas0.proseware.lab" "with its owner"
kadmin_local "setstr kasa-lock/$ARRAY kasa.expires $((now - 1))" >/dev/null
expect 1 "once expired, a plain roll says to resume" "$KASA" roll $ARRAY
err_has "its lock expired" "saying the lock expired"
expect 0 "--resume takes the expired lock over" "$KASA" roll --resume $ARRAY
err_has "took over the lock of $ARRAY left by cas0.proseware.lab" "and says so"
check "no lock left behind" sh -c "! kadmin.local -r PROSEWARE.LAB -q 'getprinc kasa-lock/$ARRAY' 2>&1 | grep -q 'Principal: kasa-lock'"
expect 0 "status is OK again" "$KASA" status $ARRAY

# Two resumers racing for one expired lock, ten times: exactly one takes it over and
# rolls; the other is told another run was first (or who holds the lock now).
# forge ROUND: an expired lock of a roll on another host that died before it noted the kvno
# it began from (so it staged nothing and the resume rolls afresh), with its own id.
forge() {
	kadmin_local "addprinc -nokey kasa-lock/$ARRAY" >/dev/null
	for kv in "kasa.kind lock" "kasa.owner \"cas0.proseware.lab pid 4242\"" "kasa.operation roll" \
		"kasa.id f0rg3d$1" "kasa.taken $(($(date +%s) + 1))" "kasa.expires $(($(date +%s) - 1))"; do
		kadmin_local "setstr kasa-lock/$ARRAY $kv" >/dev/null
	done
}
bad=0
for round in $(seq 10); do
	forge "$round"
	race "*another run took over the lock of $ARRAY first*" "*a roll of $ARRAY is running on $(hostname) pid *" --resume $ARRAY
done
check "10 rounds of two resumers taking over one expired lock: exactly one rolled each time" test "$bad" -eq 0
left=$(kadmin.local -r PROSEWARE.LAB -q 'listprincs kasa-lock/*' 2>/dev/null | grep '^kasa-lock/' | grep -v "^kasa-lock/$ARRAY/gone-")
check "no lock and no half-taken one left, only locks moved aside (kept an hour)" test -z "$left"

# An interrupted roll: status names it, its stage and the fix, and exits non-zero.
for point in locked recorded staged spns-committed committed saved; do
	before=$(dir_kvno)
	KASA_TEST_KILL_AT=$point "$KASA" roll $ARRAY >/dev/null 2>&1
	check "the controller was killed at '$point'" test $? -eq 137
	expect 1 "status after a kill at '$point'" "$KASA" status $ARRAY
	out_has "INTERRUPTED: a roll of $ARRAY on " "names the interrupted roll and its owner"
	case $point in committed) out_has "committed in the directory, not yet recorded" "its stage: committed, not recorded" ;; esac
	out_has "finish it with kasa roll --resume $ARRAY" "and the fix"
	[ $point = staged ] && out_has "staged on 2 of 2 members, not committed for the ASA" "its stage: staged everywhere"
	[ $point = staged ] && out_has "staged, not committed" "the staged kvno is shown as staged, not LATEST"
	[ $point = locked ] && out_has "no kvno staged or waiting for its commit" "its stage: nothing staged"
	expect 0 "--resume finishes it" "$KASA" roll --resume $ARRAY
	check "the roll killed at '$point' is done once: kvno $before -> $(dir_kvno)" test "$(dir_kvno)" -eq $((before + 1))
	expect 0 "a second --resume after it" "$KASA" roll --resume $ARRAY
	check "rolls nothing more: kvno $((before + 1)) -> $(dir_kvno)" test "$(dir_kvno)" -eq $((before + 1))
	expect 0 "status is OK and exits 0 after it" "$KASA" status $ARRAY
done

# The keep window comes from the realm: principals whose tickets live 24 hours.
for p in "$ASA" $SPNS; do
	kadmin_local "modprinc -maxlife 24:00:00 -maxrenewlife 168:00:00 $p" >/dev/null
done
expect 0 "a roll on a 24-hour realm" "$KASA" roll $ARRAY
expect 0 "status --json" "$KASA" status $ARRAY --json
check "the keep window is 24 h plus 5 min of clock skew ($(json keep_seconds) s)" test "$(json keep_seconds)" -eq 86700
check "the previous kvno is kept until its successor's commit + 24 h 5 min" python3 -c '
import json, sys, datetime as d
s = json.load(sys.stdin)
ks = s["members"][0]["kvnos"]
prev = [k for k in ks if k["role"] == "previous"][0]
until = d.datetime.strptime(prev["retire_after"], "%Y-%m-%dT%H:%M:%SZ")
left = (until - d.datetime.utcnow()).total_seconds()
sys.exit(0 if 86000 < left <= 86700 else 1)' <<EOF
$T_OUT
EOF
n_before=$(klist -k "$(member 1 managed_keytab)" | awk 'NR > 3 { print $1 }' | sort -u | wc -l)
expect 0 "another roll" "$KASA" roll $ARRAY
n_after=$(klist -k "$(member 1 managed_keytab)" | awk 'NR > 3 { print $1 }' | sort -u | wc -l)
check "no kvno a 24-hour ticket may still use was retired ($n_before kvnos, then $n_after)" test "$n_after" -eq $((n_before + 1))

# The right kvno with the wrong key on one member: WRONG-KEY.
KVNO=$(dir_kvno)
expect 0 "doctor cas2's key for HTTP/ at kvno $KVNO" python3 "$HERE/ktdoctor.py" "$(member 2 managed_keytab)" "HTTP/outlook.proseware.lab@PROSEWARE.LAB" "$KVNO"
expect 1 "status with a wrong key" "$KASA" status $ARRAY
out_has "WRONG-KEY" "says WRONG-KEY"
out_has "HTTP/outlook.proseware.lab@PROSEWARE.LAB" "naming the principal whose key is wrong"
expect 1 "status --json" "$KASA" status $ARRAY --json
check "cas1 OK, cas2 WRONG-KEY" test "$(json members.0.verdict) $(json members.1.verdict)" = "OK WRONG-KEY"
expect 1 "diagnose with a wrong key on cas2" "$KASA" diagnose $ARRAY
check "names cas2, WRONG-KEY, on one line (and not cas1)" sh -c 'printf "%s\n" "$1" | grep "WRONG-KEY" | grep -q "cas2.proseware.lab" && ! printf "%s\n" "$1" | grep "WRONG-KEY" | grep -q "cas1.proseware.lab"' _ "$T_OUT"
expect 0 "a copy from cas1 mends it" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab
expect 0 "and status is OK" "$KASA" status $ARRAY

# Keys changed behind kasa's back.
kadmin_local "cpw -randkey $ASA" >/dev/null
expect 1 "status after kadmin changed the ASA's keys" "$KASA" status $ARRAY
out_has "CHANGED OUTSIDE KASA" "reports it"
out_has "kasa roll $ARRAY" "and names the fix"
expect 0 "kasa roll mends it" "$KASA" roll $ARRAY
expect 0 "status is OK" "$KASA" status $ARRAY

# Every principal of the array is compared with what kasa committed: the ASA's keys, then
# one SPN's alone (in MIT its own principal, with its own kvno), changed behind kasa's
# back. status and diagnose each name the principal and give the fix.
for p in "$ASA" HTTP/outlook.proseware.lab; do
	kadmin_local "cpw -randkey $p" >/dev/null
	expect 1 "status after kadmin changed $p's keys" "$KASA" status $ARRAY
	out_has "CHANGED OUTSIDE KASA: the directory holds $p@PROSEWARE.LAB at kvno" "status names $p as changed outside kasa"
	out_has "fix: kasa roll $ARRAY" "and gives kasa roll as the fix"
	expect 1 "diagnose after kadmin changed $p's keys" "$KASA" diagnose $ARRAY
	out_has "changed behind kasa's back: the directory holds $p@PROSEWARE.LAB at kvno" "diagnose names $p too"
	out_has "fix: kasa roll $ARRAY" "with the same fix"
	expect 0 "the roll it advises" "$KASA" roll $ARRAY
	expect 0 "status is OK after it" "$KASA" status $ARRAY
done

# No ticket to check the keys with (here the KDC refuses tickets for one SPN): status
# says the keys were not checked and exits 1, never a plain OK.
kadmin_local "modprinc -allow_svr exchangeMDB/outlook" >/dev/null
expect 1 "status when no ticket for an SPN can be had" "$KASA" status $ARRAY
out_has "KEYS NOT CHECKED: cannot get a ticket for exchangeMDB/outlook@PROSEWARE.LAB" "says the keys were not checked, and why"
out_has "so status exits 1" "and the exit status"
kadmin_local "modprinc +allow_svr exchangeMDB/outlook" >/dev/null
expect 0 "status is OK once tickets can be had" "$KASA" status $ARRAY

# A ticket issued before two rolls still works after them: the principals' max life is
# 24 h (above), so members keep its kvno 24 h 5 min after its successor's commit. The
# lab realm's own max_life (10 h) caps the tickets its KDC issues, but kadmind does not
# tell it: kasa reads the principals' max life, an upper bound, and status shows that.
: "${GSSCHECK:?}"
fresh
expect 0 "alice gets a ticket for HTTP/ before two rolls" kvno HTTP/outlook.proseware.lab
old=$(printf '%s\n' "$T_OUT" | sed -n 's/.*kvno = \([0-9]*\).*/\1/p')
t0=$(date +%s)
expect 0 "a roll" "$KASA" roll $ARRAY
t1=$(date +%s)
expect 0 "and another" "$KASA" roll $ARRAY
holds() { klist -k "$1" | awk 'NR > 3 { print $1 }' | grep -qx "$2"; }
check "cas1's keytab still holds kvno $old (klist -k)" holds "$(member 1 managed_keytab)" "$old"
check "cas2's too" holds "$(member 2 managed_keytab)" "$old"
check "alice's ticket from before the rolls (kvno $old) is accepted by cas1" "$GSSCHECK" "$(member 1 managed_keytab)" HTTP/outlook.proseware.lab@PROSEWARE.LAB
check "and by cas2" "$GSSCHECK" "$(member 2 managed_keytab)" HTTP/outlook.proseware.lab@PROSEWARE.LAB
expect 0 "status" "$KASA" status $ARRAY
out_has "superseded kvnos are kept 24h05m (the longest max life of the ASA and its SPNs + clock skew)" "says the window and where it came from"
until=$(printf '%s\n' "$T_OUT" | grep -A1 '^cas1.proseware.lab ' | sed -n "s/.*kvno $old until \([0-9TZ:-]*\).*/\1/p")
check "status lists kvno $old on cas1 until its successor's commit + 24 h 5 min ($until)" python3 -c '
import sys, datetime as d
u = d.datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=d.timezone.utc).timestamp()
sys.exit(0 if int(sys.argv[2]) + 86700 <= u <= int(sys.argv[3]) + 86700 else 1)' "$until" "$t0" "$t1"
out_has "kvno $((old + 2)) (latest), kvno $((old + 1)) until " "and every kvno held, newest first, on one line per member"
# A window under an hour, from kasa.conf (the lab's own file left as it is).
cp "$KASA_CONFIG" "$T_WORK/short.conf"
printf '\tkeep_window = 45m\n' >>"$T_WORK/short.conf"
expect 0 "status with keep_window = 45m" env KASA_CONFIG="$T_WORK/short.conf" "$KASA" status $ARRAY
out_has "superseded kvnos are kept 45m (kasa.conf keep_window)" "prints 45m, not 0h45m, and says where it came from"
run env KASA_CONFIG="$T_WORK/short.conf" "$KASA" diagnose $ARRAY
out_has "keep a superseded kvno for 45m after a roll (kasa.conf keep_window)" "diagnose too"

# A kvno whose successor was committed longer ago than the window is retired. A member
# notes a commit's time when it is told of it (the retire after the commit), so the roll
# is stopped once its commit is saved, the commit time in the array's record moved 25 h
# back instead of waiting, and --resume tells the members.
new=$(($(dir_kvno) + 1))
KASA_TEST_KILL_AT=saved "$KASA" roll $ARRAY >/dev/null 2>&1
check "a roll killed after saving its commit of kvno $new" test $? -eq 137
kadmin_local "setstr kasa-array/$ARRAY kasa.committed \"$new $(($(date +%s) - 90000))\"" >/dev/null
expect 0 "--resume tells the members of the commit" "$KASA" roll --resume $ARRAY
# One retire drops at most 32 kvnos (a reply's limit) and the rolls above left more
# (10 h 5 min kept each); the next retire drops the rest.
expect 0 "--resume again retires what is left" "$KASA" roll --resume $ARRAY
check "cas1 retired kvno $((new - 1)), superseded 25 h ago" sh -c '! klist -k "$1" | awk "NR > 3 { print \$1 }" | grep -qx "$2"' - "$(member 1 managed_keytab)" $((new - 1))
check "and kvno $old before it" sh -c '! klist -k "$1" | awk "NR > 3 { print \$1 }" | grep -qx "$2"' - "$(member 1 managed_keytab)" "$old"
check "but keeps kvno $new" holds "$(member 1 managed_keytab)" "$new"
check "alice's old ticket is now rejected by cas1" sh -c '! "$GSSCHECK" "$1" HTTP/outlook.proseware.lab@PROSEWARE.LAB >/dev/null' - "$(member 1 managed_keytab)"
expect 0 "status is OK" "$KASA" status $ARRAY
check "and lists kvno $new alone for cas1" test "$(printf '%s\n' "$T_OUT" | grep -A1 '^cas1.proseware.lab ' | tail -1)" = "    kvno $new (latest)"

# kadmind down: status still asks the members, says the directory could not be asked.
kpid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kadmind"]["pid"])' "$T_WORK/lab.json")
kill "$kpid"
sleep 0.5
expect 1 "status with kadmind down" "$KASA" status $ARRAY
err_has "showing what the members hold" "says the directory could not be asked"
out_has "the directory could not be asked" "in its output too"
out_has "cas1.proseware.lab  UNCHECKED" "lists cas1 with what it holds"
out_has "cas2.proseware.lab  UNCHECKED" "and cas2"
expect 1 "status --json with kadmind down" "$KASA" status $ARRAY --json
check "each member's kvnos are listed" test "$(json members.1.kvnos.0.kvno)" -ge 1
expect 1 "diagnose with kadmind down" "$KASA" diagnose $ARRAY
out_has "the directory cannot be asked" "says the directory cannot be asked"
out_has "cas1.proseware.lab holds kvno" "and what each member holds"

done_testing
