#!/bin/sh
# Rolls on a schedule and members that heal (issue 13): kasa roll --if-older-than rolls
# only when the last commit is older than asked (its age faked through the array's
# recorded commit time with dirtool, not by waiting); kasa heal gives a member that missed
# a roll (STALE) or a new one (MISSING) the keys a healthy member holds, without touching
# the directory's keys (kadmin.local's kvno unchanged), and says what it cannot heal.
. "$(dirname "$0")/lib.sh"

: "${DIRTOOL:?}"
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'

lab_up --members 4
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
member() { python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1]; print(m[sys.argv[3]])' "$T_WORK/lab.json" "$1" "$2"; }
# The kvno of HTTP/outlook.proseware.lab as MIT's own kadmin.local reads it.
mit_kvno() { kadmin_local "getprinc HTTP/$ARRAY" | sed -n 's/.*Key: vno \([0-9]*\).*/\1/p' | head -n 1; }
decrypts() { kvno -k "$(member "$1" managed_keytab)" "HTTP/$ARRAY" >/dev/null 2>&1; }

"$KASA" account create "$ASA" --computer >/dev/null
"$KASA" spn add "HTTP/$ARRAY" "$ASA" >/dev/null
"$KASA" array create $ARRAY --asa "$ASA" >/dev/null
for i in 1 2 3; do
	"$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(member $i port)" --address "$(member $i address)" >/dev/null
done
kinit -k -t "$LAB/alice.keytab" alice >/dev/null 2>&1

# --if-older-than: an array never rolled is rolled.
expect 0 "roll --if-older-than 30d on an array never rolled: it rolls" \
	"$KASA" roll $ARRAY --if-older-than 30d
out_has "from kvno 1 to kvno 2" "to kvno 2"
expect 0 "again at once: the key is younger than 30d" "$KASA" roll $ARRAY --if-older-than 30d
check "says how old the key is (seconds)" sh -c "printf '%s' \"\$1\" | grep -Eq 'kvno 2 was committed [0-9]+s ago'" sh "$T_OUT"
out_has "younger than 30d: nothing to roll" "and that nothing was rolled"
check "the directory is still at kvno 2" test "$(mit_kvno)" = 2
expect 0 "the commit made 31 days old (dirtool age)" "$DIRTOOL" age $ARRAY $((31 * 86400))
expect 0 "roll --if-older-than 30d now rolls" "$KASA" roll $ARRAY --if-older-than 30d
out_has "from kvno 2 to kvno 3" "to kvno 3"
check "the directory is at kvno 3" test "$(mit_kvno)" = 3
expect 0 "made 2 hours old: --if-older-than 3h does not roll" "$DIRTOOL" age $ARRAY 7200
expect 0 "roll --if-older-than 3h" "$KASA" roll $ARRAY --if-older-than 3h
out_has "committed 2h ago" "says 2h"
expect 0 "--if-older-than 90m does" "$KASA" roll $ARRAY --if-older-than 90m
out_has "from kvno 3 to kvno 4" "to kvno 4"
for bad in 0 -5 10x 30dd '' 3.5d d 999999999d; do
	expect 2 "--if-older-than '$bad' is bad usage" "$KASA" roll $ARRAY --if-older-than "$bad"
	err_one_line "in one line"
done
err_has "takes a duration" "saying what it takes"
expect 2 "--resume with --if-older-than is bad usage" "$KASA" roll --resume $ARRAY --if-older-than 1d
check "none of that rolled" test "$(mit_kvno)" = 4

# status --nagios: one line, the monitoring plugins' exit codes.
expect 0 "status --nagios on a healthy array: OK" "$KASA" status $ARRAY --nagios
check "one line: KASA OK, members and kvno, perfdata" test "$T_OUT" = \
	"KASA OK - $ARRAY: 3 of 3 members OK at kvno 4 | '${ARRAY}_ok'=3;;;0;3 '${ARRAY}_kvno'=4"
expect 3 "status --nagios of an array that does not exist: UNKNOWN" "$KASA" status nothere.proseware.lab --nagios
out_has "KASA UNKNOWN - " "says UNKNOWN"
sed 's/^\tadmin_server = .*/\tadmin_server = 127.0.0.1:1/' "$KASA_CONFIG" >"$T_WORK/down.conf"
KASA_CONFIG="$T_WORK/down.conf" expect 3 "status --nagios with kadmind unreachable: UNKNOWN" "$KASA" status $ARRAY --nagios
out_has "KASA UNKNOWN - cannot ask the directory" "says why"
expect 2 "--nagios with --json is bad usage" "$KASA" status $ARRAY --nagios --json

# heal: nothing to do on a healthy array.
expect 0 "heal a healthy array" "$KASA" heal $ARRAY
out_has "every member holds kvno 4; nothing to heal" "says there is nothing to heal"

# A member down through a roll (--force commits without it), then back: STALE, healed.
expect 0 "stop cas2" "$KASA" lab member stop cas2 --dir "$LAB"
expect 3 "roll --force without cas2" "$KASA" roll $ARRAY --force
check "the directory is at kvno 5" test "$(mit_kvno)" = 5
expect 1 "heal while cas2 is down cannot heal it" "$KASA" heal $ARRAY
out_has "cas2.proseware.lab is UNREACHABLE, which heal does not fix" "says so"
expect 0 "start cas2 again" "$KASA" lab member start cas2 --dir "$LAB"
expect 1 "status: cas2 is STALE" "$KASA" status $ARRAY
out_has "STALE" "STALE"
expect 2 "status --nagios: CRITICAL" "$KASA" status $ARRAY --nagios
out_has "KASA CRITICAL - $ARRAY: cas2.proseware.lab STALE 2 of 3 members OK at kvno 5" "naming cas2 and its verdict"
check "cas2 cannot decrypt a kvno 5 ticket yet" sh -c "! kvno -k '$(member 2 managed_keytab)' HTTP/$ARRAY >/dev/null 2>&1"
expect 0 "heal" "$KASA" heal $ARRAY
out_has "healed cas2.proseware.lab: copied kvno 5 from cas1.proseware.lab" "says what it did"
check "the directory's kvno is unchanged (kadmin.local)" test "$(mit_kvno)" = 5
expect 0 "status: all OK" "$KASA" status $ARRAY
check "cas2 decrypts a fresh kvno 5 ticket" decrypts 2

# A new member (MISSING), healed with every other array's members (no ARRAY).
expect 0 "add cas4" "$KASA" array add-member $ARRAY "cas4.proseware.lab:$(member 4 port)" --address "$(member 4 address)"
expect 1 "status: cas4 is MISSING" "$KASA" status $ARRAY
out_has "MISSING" "MISSING"
expect 0 "heal every array" "$KASA" heal
out_has "healed cas4.proseware.lab: copied kvno 5" "cas4 got the keys"
check "cas4 decrypts a kvno 5 ticket" decrypts 4
check "the directory's kvno is still 5" test "$(mit_kvno)" = 5

# A roll left interrupted: heal does not copy, it says to resume.
KASA_TEST_KILL_AT=staged "$KASA" roll $ARRAY >/dev/null 2>&1
expect 1 "heal with an interrupted roll" "$KASA" heal $ARRAY
out_has "kasa roll --resume" "points at the resume"
expect 2 "status --nagios with an interrupted roll: CRITICAL" "$KASA" status $ARRAY --nagios
out_has "a roll was interrupted (kasa roll --resume $ARRAY)" "saying so"
expect 0 "roll --resume" "$KASA" roll --resume $ARRAY
expect 0 "heal after the resume: nothing to heal" "$KASA" heal $ARRAY

expect 2 "heal with two arrays is bad usage" "$KASA" heal a.example b.example
err_one_line "in one line"
expect 2 "heal of a bad name" "$KASA" heal 'bad name!'
err_one_line "in one line"
expect 1 "heal of an array that does not exist" "$KASA" heal nothere.proseware.lab
err_one_line "in one line"

done_testing
