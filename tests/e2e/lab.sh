#!/bin/sh
# kasa lab on its own: up, status, env, up twice, down (exactly what it started), down
# with nothing running, restart with the database kept, bad arguments.
. "$(dirname "$0")/lib.sh"

alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

expect 0 "lab up" "$KASA" lab up --dir "$LAB"
out_has "lab PROSEWARE.LAB runs in" "up names the realm"
for f in krb5.conf kdc.conf kasa.conf kasa-admin.keytab alice.keytab lab.state; do
	check "up wrote $f" test -s "$LAB/$f"
done
check "the keytabs are not readable by others" test "$(stat -c %a "$LAB/alice.keytab")" = 600

expect 0 "lab status --json" "$KASA" lab status --dir "$LAB" --json
KDC_PID=$(json kdc.pid)
KADMIND_PID=$(json kadmind.pid)
KDC_PORT=$(json kdc.port)
check "status gives the KDC's loopback address" test "$(json kdc.address)" = 127.0.0.1
check "the KDC pid is a running krb5kdc" sh -c "alive() { kill -0 \$1 && ! grep -q 'State:.*Z' /proc/\$1/status; }; alive $KDC_PID && grep -q krb5kdc /proc/$KDC_PID/comm"
check "the kadmind pid is a running kadmind" grep -q kadmind "/proc/$KADMIND_PID/comm"
check "the KDC listens on loopback only" sh -c "ss -Htlnp | grep 'pid=$KDC_PID,' | awk '{print \$4}' | grep -qv '^127\\.0\\.0\\.1:' && exit 1 || exit 0"

expect 0 "lab status (table)" "$KASA" lab status --dir "$LAB"
out_has "running" "the table says running"

expect 0 "lab env" "$KASA" lab env --dir "$LAB"
for v in KRB5_CONFIG KRB5_KDC_PROFILE KRB5CCNAME KASA_CONFIG; do
	out_has "export $v=" "env exports $v"
done
eval "$T_OUT"
expect 0 "kinit as alice with the lab's keytab" kinit -k -t "$LAB/alice.keytab" alice
expect 0 "klist shows alice's TGT in the lab's ccache" klist
out_has "krbtgt/PROSEWARE.LAB@PROSEWARE.LAB" "a TGT for the lab realm"
expect 0 "kadmin.local reaches the lab's database" kadmin.local -q "getprinc alice"
out_has "Principal: alice@PROSEWARE.LAB" "and finds alice"
expect 0 "kasa reaches kadmind with the lab's kasa.conf" "$KASA" account list

expect 0 "lab up again" "$KASA" lab up --dir "$LAB"
out_has "already runs" "says the lab already runs"
expect 0 "status after the second up" "$KASA" lab status --dir "$LAB" --json
check "the second up started no second KDC" test "$(json kdc.pid)" = "$KDC_PID"
check "only one krb5kdc runs for this lab" test "$(pgrep -f "krb5kdc -n -r PROSEWARE.LAB" | while read -r p; do grep -qz "KRB5_KDC_PROFILE=$LAB/kdc.conf" /proc/$p/environ 2>/dev/null && echo "$p"; done | wc -l)" -eq 1
expect 2 "lab up with another realm on the same dir" "$KASA" lab up --dir "$LAB" --realm OTHER.LAB

# A decoy: a process down must not touch, even though it is a krb5kdc-named sleeper.
sleep 300 &
DECOY=$!
expect 0 "lab down" "$KASA" lab down --dir "$LAB"
out_has "stopped krb5kdc (pid $KDC_PID)" "down names the KDC it stopped"
out_has "stopped kadmind (pid $KADMIND_PID)" "down names kadmind"
check "the KDC is gone" sh -c "! (kill -0 $KDC_PID 2>/dev/null && ! grep -q 'State:.*Z' /proc/$KDC_PID/status)"
check "down left other processes alone" kill -0 "$DECOY"
kill "$DECOY"
expect 0 "lab down with nothing running" "$KASA" lab down --dir "$LAB"
out_has "nothing to stop" "says there is nothing to stop"
expect 1 "lab status when stopped exits 1" "$KASA" lab status --dir "$LAB"
out_has "stopped" "and says stopped"
expect 1 "kasa with the lab down fails cleanly" "$KASA" account list
err_one_line "with one line"

expect 0 "lab up restarts the stopped lab" "$KASA" lab up --dir "$LAB"
expect 0 "alice's keytab still works: the database was kept" kinit -k -t "$LAB/alice.keytab" alice
expect 0 "lab down" "$KASA" lab down --dir "$LAB"

expect 0 "lab down of a directory that holds no lab" "$KASA" lab down --dir "$T_WORK/none"
out_has "nothing to stop" "says so"
expect 1 "lab env of a directory that holds no lab" "$KASA" lab env --dir "$T_WORK/none"
err_has "kasa lab up" "and how to start one"
mkdir "$T_WORK/full"
echo keep >"$T_WORK/full/krb5.conf"
expect 1 "lab up refuses a directory that holds something else" "$KASA" lab up --dir "$T_WORK/full"
err_has "not empty" "saying it is not empty"
check "and writes nothing there" test "$(ls "$T_WORK/full")" = krb5.conf
check "and leaves the file in it alone" test "$(cat "$T_WORK/full/krb5.conf")" = keep
expect 2 "a lowercase realm is refused" "$KASA" lab up --dir "$T_WORK/l2" --realm proseware.lab
expect 2 "a path with a space is refused" "$KASA" lab up --dir "$T_WORK/a b"
expect 2 "lab up with an operand" "$KASA" lab up extra
expect 2 "lab up with an unknown option" "$KASA" lab up --members
expect 2 "lab without a verb" "$KASA" lab
for a in "" "--ad"; do
	expect 2 "lab up $a --members 101 is refused" "$KASA" lab up $a --dir "$T_WORK/r" --members 101
	err_has "--members takes a number from 0 to 100" "saying the range"
	expect 2 "lab up $a --replay memcached is refused" "$KASA" lab up $a --dir "$T_WORK/r" --replay memcached
	err_one_line "one line on stderr"
	err_has "--replay takes local or redis" "saying what it takes"
	check "and makes nothing" test ! -e "$T_WORK/r"
done
expect 0 "lab --help" "$KASA" lab --help
out_has "kasa lab up" "help shows the verbs"

# Another realm name works too, in its own directory.
expect 0 "lab up --realm EXAMPLE.TEST" "$KASA" lab up --dir "$T_WORK/ex" --realm EXAMPLE.TEST
expect 0 "its env" "$KASA" lab env --dir "$T_WORK/ex"
(eval "$T_OUT" && kinit -k -t "$T_WORK/ex/alice.keytab" alice@EXAMPLE.TEST) >/dev/null 2>&1
check "alice authenticates in EXAMPLE.TEST" test $? -eq 0
expect 0 "and it stops" "$KASA" lab down --dir "$T_WORK/ex"

done_testing
