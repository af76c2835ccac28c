#!/bin/sh
# The fault suite (issue 15): rolls interrupted every way a roll can be, under continuous
# Negotiate load through HAProxy to three members. Clients with tickets from before each
# roll and clients that fetch a fresh ticket for every request (so they use a new kvno the
# moment the KDC issues it) authenticate throughout; the faults are the controller
# SIGKILLed at each test point of the roll (then kasa roll --resume), a member's kasad
# killed and restarted before and after it staged, a whole member stopped and started, and
# kadmind stopped at the commit (then kasa lab up and --resume). After each: not one
# authentication failed; every member still holds the directory's kvno of every principal
# in a keytab klist -k reads whole (the directory never ahead of a member that staged);
# kasa status all OK once the roll is finished. kasa verify at the end.
#
# This is the short form, one roll per fault, for make check. FAULT_SCHEDULE names the
# steps of a longer run (scripts/soak: 20 rolls with the faults spread among plain ones and
# kasad killed at random moments); FAULT_OLD_CLIENTS and FAULT_FRESH_CLIENTS size the load.
# Lines "# soak: KEY VALUE" carry the figures scripts/soak writes to doc/RELIABILITY.md.
. "$(dirname "$0")/lib.sh"

HERE=$(dirname "$0")
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
SPNS="HTTP/$ARRAY exchangeMDB/$ARRAY"
PRINCS="$ASA $SPNS"
REALM=PROSEWARE.LAB
POINTS="locked recorded staged spns-committed committed saved"
SHORT="kill:locked kill:recorded kill:staged kill:spns-committed kill:committed kill:saved
	kasad:before-stage kasad:after-stage member:restart kadmind:staged kadmind:spns-committed"
# shellcheck disable=SC2086 # the schedule is words
SCHEDULE=$(printf '%s ' ${FAULT_SCHEDULE:-$SHORT})
OLD_CLIENTS=${FAULT_OLD_CLIENTS:-8}
FRESH_CLIENTS=${FAULT_FRESH_CLIENTS:-4}
gssapi_python # the load needs python3-gssapi

HELD=      # a roll waiting at a test point (KASA_TEST_HOLD_FILE)
CUR=0      # the load running now: its number, its two clients' pids, its step's name
CUR_PIDS=
CUR_NAME=
CUR_DROPS_OK=0
TOTAL_REQ=0 TOTAL_FAILED=0 TOTAL_DROPPED=0 STEPS=0
NEW_PIDS=  # the next step's load, started while the current one still runs
stop_all() {
	rm -f "$T_WORK/hold"
	[ -n "$HELD" ] && wait "$HELD" 2>/dev/null
	touch "$T_WORK/stop$CUR" "$T_WORK/stop$((CUR + 1))"
	for p in $CUR_PIDS $NEW_PIDS; do wait "$p" 2>/dev/null; done
	cleanup
}
trap stop_all EXIT

lab_up --members 3
labj() { "$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json" 2>/dev/null; }
labv() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T_WORK/lab.json" "$1"; }
labj
BPORT=$(labv 'd["balancer"]["port"]')
KT1=$(labv 'd["members"][0]["managed_keytab"]')
KT2=$(labv 'd["members"][1]["managed_keytab"]')
KT3=$(labv 'd["members"][2]["managed_keytab"]')
"$KASA" account create "$ASA" --computer >/dev/null
for spn in $SPNS; do "$KASA" spn add "$spn" "$ASA" >/dev/null; done
"$KASA" array create $ARRAY --asa "$ASA" >/dev/null
for i in 1 2 3; do
	"$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(labv "d['members'][$i-1]['port']")" \
		--address "127.0.0.1$i" >/dev/null
done
expect 0 "the first roll" "$KASA" roll $ARRAY

dir_kvno() { kadmin_local "getprinc $1" | sed -n 's/.*Key: vno \([0-9]*\),.*/\1/p' | head -1; }
ENCTYPES=$(kadmin_local "getprinc $ASA" | sed -n 's/.*Key: vno [0-9]*, \([^ ,:]*\).*/\1/p' | sort -u | tr '\n' ' ')
FIRST_KVNO=$(dir_kvno "$ASA")

# keytab_complete KEYTAB: klist -k reads it whole, and each kvno in it holds every principal of
# the array under every enctype; says what is missing. (kvnos and names only: no keys.)
keytab_complete() {
	if ! klist -k -e "$1" >"$T_WORK/klist" 2>&1; then
		echo "klist -k cannot read $1: $(tail -n 1 "$T_WORK/klist")"
		return 1
	fi
	awk -v want="$PRINCS" -v enc="$ENCTYPES" -v realm="$REALM" '
		NR > 3 { if (!($1 in k)) { k[$1] = 1; nk++ }; have[$1 " " $2 " " $3] = 1 }
		END {
			n = split(want, P, " "); m = split(enc, E, " "); bad = 0
			if (nk == 0) { print "no entries"; exit 1 }
			for (kv in k) for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
				if (!((kv " " P[i] "@" realm " (" E[j] ")") in have)) {
					print "kvno " kv " lacks " P[i] " " E[j]; bad = 1
				}
			exit bad
		}' "$T_WORK/klist"
}

# dir_check WHEN: every member's keytab is complete and holds, for every principal of the
# array, the kvno the directory has for it: the directory is never ahead of a member that
# staged. (No member is left out by a roll here, so "that staged" is each of them.)
dir_check() {
	why=""
	tops=""
	for p in $PRINCS; do
		d=$(dir_kvno "$p")
		[ -n "$d" ] || why="$why the directory has no kvno for $p;"
		for i in 1 2 3; do
			eval "kt=\$KT$i"
			if ! klist -k "$kt" 2>/dev/null | awk -v p="$p@$REALM" -v d="$d" \
				'NR > 3 && $2 == p && $1 == d { f = 1 } END { exit !f }'; then
				why="$why cas$i lacks $p at the directory's kvno $d;"
			fi
		done
	done
	for i in 1 2 3; do
		eval "kt=\$KT$i"
		c=$(keytab_complete "$kt") || why="$why cas$i: $c;"
		tops="$tops${tops:+/}$(klist -k "$kt" 2>/dev/null | awk 'NR > 3 { print $1 }' | sort -n | tail -n 1)"
	done
	d=$(dir_kvno "$ASA")
	if [ -z "$why" ]; then
		ok "$1: directory kvno $d <= every member's highest ($tops); each holds it for every principal, in a complete keytab"
	else
		not_ok "$1: the directory (kvno $d) is ahead of a member, or a keytab is torn" "$why"
	fi
}

# load_next NAME: start the load of step NAME, then end the previous step's, so that the
# load never pauses; each step's requests are counted on their own.
load_next() {
	n=$((CUR + 1))
	# Tickets from before this step's roll: at the kvno the directory has now.
	KRB5CCNAME="FILE:$T_WORK/old$n.cc" kinit -k -t "$LAB/alice.keytab" alice >/dev/null 2>&1
	KRB5CCNAME="FILE:$T_WORK/old$n.cc" kvno "HTTP/$ARRAY" >/dev/null 2>&1
	KRB5CCNAME="FILE:$T_WORK/old$n.cc" "$PY" "$HERE/negload.py" 127.0.0.10 "$BPORT" $ARRAY \
		"$T_WORK/stop$n" "$OLD_CLIENTS" >"$T_WORK/old$n.json" 2>&1 &
	p1=$!
	"$PY" "$HERE/negload.py" 127.0.0.10 "$BPORT" $ARRAY "$T_WORK/stop$n" "$FRESH_CLIENTS" \
		"$LAB/alice.keytab" >"$T_WORK/fresh$n.json" 2>&1 &
	p2=$!
	NEW_PIDS="$p1 $p2"
	sleep 1 # python and gssapi start in about 0.3 s
	load_end
	CUR=$n
	CUR_PIDS=$NEW_PIDS
	NEW_PIDS=
	CUR_NAME=$1
	CUR_DROPS_OK=0
}

# load_end: stop the current step's load and check it: not one authentication failed.
# A step that stops a member's kasa-httpd (CUR_DROPS_OK) counts connections cut with no
# reply apart. kasa-httpd lets the requests in flight end when it stops, and the lab's
# HAProxy (retries, option redispatch) sends refused ones elsewhere, which took the cuts
# from 3-9 a stop to 0 in most runs; a connection still in the accept queue at the moment
# kasa-httpd closes its listening socket is reset (1 in one ASan run), so they remain a
# known gap (TODO) until the balancer takes a member out before it stops listening.
load_end() {
	[ -n "$CUR_PIDS" ] || return 0
	touch "$T_WORK/stop$CUR"
	for p in $CUR_PIDS; do wait "$p"; done
	CUR_PIDS=
	python3 - "$T_WORK/old$CUR.json" "$T_WORK/fresh$CUR.json" >"$T_WORK/load.txt" 2>&1 <<'EOF'
import json, sys
req = failed = dropped = 0
reasons = []
for path in sys.argv[1:]:
    try:
        d = json.loads(open(path).read().strip().splitlines()[-1])
    except Exception as e:
        print(f"0 1 0 {path}: no result ({e})")
        sys.exit(0)
    req += d["requests"]
    failed += d["failed"]
    reasons += d["reasons"]
    # A connection the member closed while stopping (no reply at all), when every one of
    # the failures is listed (negload keeps five): the rest is counted as failed.
    if d["failed"] <= len(d["reasons"]):
        dropped += sum(1 for r in d["reasons"] if r.startswith(
            ("RemoteDisconnected", "ConnectionResetError", "BrokenPipeError")))
print(req, failed, dropped, " | ".join(reasons))
EOF
	read -r req failed dropped reasons <"$T_WORK/load.txt"
	TOTAL_REQ=$((TOTAL_REQ + req))
	STEPS=$((STEPS + 1))
	if [ "$CUR_DROPS_OK" = 1 ]; then
		TOTAL_DROPPED=$((TOTAL_DROPPED + dropped))
		TOTAL_FAILED=$((TOTAL_FAILED + failed - dropped))
		check "$CUR_NAME: $((failed - dropped)) of $req authentications failed under load" \
			test "$((failed - dropped))" -eq 0 -a "$req" -ge 20
		[ "$failed" -eq "$dropped" ] || echo "# $CUR_NAME: $reasons"
		if [ "$dropped" -eq 0 ]; then
			ok "$CUR_NAME: no connection cut by the member as it stopped"
		else
			T_NUM=$((T_NUM + 1))
			echo "not ok $T_NUM - $CUR_NAME: $dropped connections cut by the member as it stopped # TODO a connection still in the member's accept queue when it stops is reset: the balancer must take the member out before it stops listening"
			echo "# $reasons"
		fi
	else
		TOTAL_FAILED=$((TOTAL_FAILED + failed))
		check "$CUR_NAME: $failed of $req authentications failed under load" \
			test "$failed" -eq 0 -a "$req" -ge 20
		[ "$failed" -eq 0 ] || echo "# $CUR_NAME: $reasons"
	fi
}

# hold POINT: start a roll that waits at POINT until the test removes $T_WORK/hold.
hold() {
	touch "$T_WORK/hold"
	KASA_TEST_HOLD_AT=$1 KASA_TEST_HOLD_FILE="$T_WORK/hold" "$KASA" roll $ARRAY \
		>"$T_WORK/held.out" 2>"$T_WORK/held.err" &
	HELD=$!
}
# release: let the held roll go on, and wait for it (its exit in HELD_STATUS).
release() {
	rm -f "$T_WORK/hold"
	wait "$HELD"
	HELD_STATUS=$?
	HELD=
}
# reached POINT: the held roll is at POINT, by what it left behind (at most 10 s).
reached() {
	want=$(( $(dir_kvno "$ASA") + 1 ))
	for _ in $(seq 100); do
		case $1 in
		recorded) kadmin_local "getstrs kasa-array/$ARRAY" | grep -q "^kasa.roll: $want " && return 0 ;;
		staged)
			all=1
			for kt in "$KT1" "$KT2" "$KT3"; do
				klist -k "$kt" 2>/dev/null | awk -v k="$want" 'NR > 3 && $1 == k { f = 1 } END { exit !f }' || all=0
			done
			[ $all = 1 ] && return 0 ;;
		spns-committed)
			all=1
			for spn in $SPNS; do [ "$(dir_kvno "$spn")" = "$want" ] || all=0; done
			[ $all = 1 ] && return 0 ;;
		esac
		kill -0 "$HELD" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
member_pid() { labj; labv "d['members'][$1-1]['pid']"; }
# gone PID: the process ended (a zombie counts: its parent, not this test, reaps it).
gone() {
	for _ in $(seq 100); do
		case $(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) in "" | Z | X) return 0 ;; esac
		sleep 0.05
	done
	return 1
}
status_ok() { expect 0 "$1: kasa status is all OK" "$KASA" status $ARRAY; }

# kill:POINT — the controller SIGKILLed there; --resume finishes the roll.
step_kill() {
	expect 137 "$1: the controller is SIGKILLed at '$2'" env KASA_TEST_KILL_AT="$2" "$KASA" roll $ARRAY
	dir_check "$1, after the kill"
	expect 0 "$1: kasa roll --resume $ARRAY finishes it" "$KASA" roll --resume $ARRAY
	if [ "$2" = locked ]; then
		# Killed before it recorded a kvno: nothing was staged, so the resume does that roll.
		out_has "rolled $ARRAY" "$1: the resume does the roll that staged nothing"
	fi
	status_ok "$1"
}

# kasad:before-stage — a member's kasad killed before the stage: that member fails the
# stage (exit 3), the directory is unchanged; restarted, a plain roll goes through.
step_kasad_before() {
	m=$(( (STEPS % 3) + 1 ))
	hold recorded
	check "$1: the roll waits at 'recorded'" reached recorded
	pid=$(member_pid $m)
	kill -KILL "$pid"
	check "$1: cas$m's kasad (pid $pid) is killed" gone "$pid"
	release
	check "$1: the roll fails on cas$m: exit 3 (got $HELD_STATUS)" test "$HELD_STATUS" -eq 3
	check "$1: and says the directory is unchanged" grep -q "the directory is unchanged" "$T_WORK/held.err"
	dir_check "$1, after the failed roll"
	expect 0 "$1: kasa lab member start cas$m" "$KASA" lab member start cas$m --dir "$LAB"
	expect 0 "$1: the next roll goes through" "$KASA" roll $ARRAY
	status_ok "$1"
}

# kasad:after-stage — a member's kasad killed once every member staged, and restarted
# before the commit: the roll commits, and the restarted kasad still holds what it staged.
step_kasad_after() {
	m=$(( (STEPS % 3) + 1 ))
	hold staged
	check "$1: the roll waits at 'staged'" reached staged
	pid=$(member_pid $m)
	kill -KILL "$pid"
	check "$1: cas$m's kasad (pid $pid) is killed" gone "$pid"
	dir_check "$1, while cas$m is down"
	expect 0 "$1: kasa lab member start cas$m" "$KASA" lab member start cas$m --dir "$LAB"
	release
	check "$1: the roll commits: exit 0 (got $HELD_STATUS)" test "$HELD_STATUS" -eq 0
	dir_check "$1, after the commit"
	status_ok "$1"
}

# kasad:random — a member's kasad SIGKILLed at a random moment of a roll (0-300 ms in):
# the roll commits (exit 0) or fails on that member (exit 3, nothing committed); restarted,
# a roll finishes what is left.
step_kasad_random() {
	m=$(( (STEPS % 3) + 1 ))
	pid=$(member_pid $m)
	ms=$(od -An -N2 -tu2 /dev/urandom | awk '{ print $1 % 300 }')
	"$KASA" roll $ARRAY >"$T_WORK/held.out" 2>"$T_WORK/held.err" &
	HELD=$!
	sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
	kill -KILL "$pid"
	wait "$HELD"
	st=$?
	HELD=
	check "$1: roll with cas$m's kasad killed $ms ms in: exit 0 or 3 (got $st)" test "$st" -eq 0 -o "$st" -eq 3
	gone "$pid"
	dir_check "$1, after the roll"
	expect 0 "$1: kasa lab member start cas$m" "$KASA" lab member start cas$m --dir "$LAB"
	if [ "$st" -ne 0 ]; then
		expect 0 "$1: the next roll goes through" "$KASA" roll $ARRAY
	fi
	status_ok "$1"
}

# member:restart — a whole member (kasad and kasa-httpd) stopped and started while the
# roll waits between stage and commit; HAProxy takes it out and back.
step_member() {
	m=$(( (STEPS % 3) + 1 ))
	CUR_DROPS_OK=1
	hold staged
	check "$1: the roll waits at 'staged'" reached staged
	expect 0 "$1: kasa lab member stop cas$m" "$KASA" lab member stop cas$m --dir "$LAB"
	sleep 1 # HAProxy's health check (every 500 ms) takes it out
	dir_check "$1, while cas$m is down"
	expect 0 "$1: kasa lab member start cas$m" "$KASA" lab member start cas$m --dir "$LAB"
	sleep 1 # and back in
	release
	check "$1: the roll commits: exit 0 (got $HELD_STATUS)" test "$HELD_STATUS" -eq 0
	dir_check "$1, after the commit"
	status_ok "$1"
}

# kadmind:POINT — kadmind stopped while the roll waits at POINT (staged: before the commit;
# spns-committed: the SPNs took the new keys, the ASA not yet). The commit fails (exit 1,
# one line); kasa lab up starts kadmind again and --resume finishes.
step_kadmind() {
	hold "$2"
	check "$1: the roll waits at '$2'" reached "$2"
	labj
	kpid=$(labv 'd["kadmind"]["pid"]')
	kill "$kpid"
	check "$1: kadmind (pid $kpid) is stopped" gone "$kpid"
	release
	check "$1: the roll fails: exit 1 (got $HELD_STATUS)" test "$HELD_STATUS" -eq 1
	# shellcheck disable=SC2016 # the inner sh expands it
	check "$1: and says why in one line: $(head -n 1 "$T_WORK/held.err" | cut -c 1-200)" \
		sh -c '[ "$(wc -l <"$1")" -eq 1 ] && grep -q "^kasa: roll: " "$1"' sh "$T_WORK/held.err"
	check "$1: naming the fix, kasa roll --resume $ARRAY" grep -q "kasa roll --resume $ARRAY finishes the roll" "$T_WORK/held.err"
	dir_check "$1, with kadmind down"
	expect 0 "$1: kasa lab up starts kadmind again" "$KASA" lab up --dir "$LAB"
	expect 0 "$1: kasa roll --resume $ARRAY finishes it" "$KASA" roll --resume $ARRAY
	status_ok "$1"
}

# A plain roll under load.
step_plain() {
	expect 0 "$1: kasa roll $ARRAY" "$KASA" roll $ARRAY
	dir_check "$1, after it"
	status_ok "$1"
}

k=0
for s in $SCHEDULE; do
	k=$((k + 1))
	name="roll $k ($s)"
	load_next "$name"
	case $s in
	kill:*) step_kill "$name" "${s#kill:}" ;;
	kasad:before-stage) step_kasad_before "$name" ;;
	kasad:after-stage) step_kasad_after "$name" ;;
	kasad:random) step_kasad_random "$name" ;;
	member:restart) step_member "$name" ;;
	kadmind:*) step_kadmind "$name" "${s#kadmind:}" ;;
	plain) step_plain "$name" ;;
	*) echo "Bail out! unknown step $s in FAULT_SCHEDULE" && exit 1 ;;
	esac
	sleep 0.5 # the load goes on past the step's end
done
sleep 1.5 # and the last kvno is used a while, by every member
load_end

LAST=$(dir_kvno "$ASA")
check "$k rolls took the directory from kvno $FIRST_KVNO to $LAST, one kvno each" test "$LAST" -eq $((FIRST_KVNO + k))
for p in $POINTS; do
	case " $SCHEDULE" in
	*" kill:$p "*) ok "the controller was killed at '$p'" ;;
	*) [ -n "${FAULT_SCHEDULE:-}" ] || not_ok "the controller was killed at '$p'" ;;
	esac
done
expect 0 "kasa status: every member OK" "$KASA" status $ARRAY
kdestroy >/dev/null 2>&1
expect 0 "kasa verify: every member accepts a fresh ticket for every SPN" "$KASA" verify $ARRAY
for i in 1 2 3; do
	check "cas$i accepted tickets at the last kvno ($LAST) during the load" \
		grep -q "\"Kerberos\",\"$LAST\",.*\"ok\"" "$LAB/cas$i/auth.log"
done
echo "# soak: rolls $k"
echo "# soak: kvnos $FIRST_KVNO $LAST"
echo "# soak: requests $TOTAL_REQ"
echo "# soak: failed $TOTAL_FAILED"
echo "# soak: dropped $TOTAL_DROPPED"
echo "# soak: schedule $SCHEDULE"
done_testing
