#!/bin/sh
# The directory going away: with kadmind stopped, or the KDC, every command says what is
# unreachable in one line and exits 1; nothing is changed once it comes back.
. "$(dirname "$0")/lib.sh"

lab_up
expect 0 "create the ASA" "$KASA" account create 'CASARRAY-ASA$' --computer
expect 0 "status" "$KASA" lab status --dir "$LAB" --json
KDC_PID=$(json kdc.pid)
KADMIND_PID=$(json kadmind.pid)

kill "$KADMIND_PID"
sleep 0.3
expect 1 "account list with kadmind stopped exits 1" "$KASA" account list
err_has "cannot reach kadmind" "says kadmind cannot be reached"
err_one_line "in one line"
expect 1 "spn add with kadmind stopped exits 1" "$KASA" spn add http/outlook.proseware.lab 'CASARRAY-ASA$'
err_has "cannot reach kadmind" "says kadmind cannot be reached"
expect 2 "bad input is still bad input (exit 2) with kadmind stopped" "$KASA" spn add http/ 'CASARRAY-ASA$'

expect 0 "lab up brings kadmind back" "$KASA" lab up --dir "$LAB"
expect 1 "the failed spn add changed nothing" "$KASA" spn query http/outlook.proseware.lab

kill "$KDC_PID"
sleep 0.3
expect 1 "account show with the KDC stopped exits 1" "$KASA" account show 'CASARRAY-ASA$'
err_has "cannot reach the KDC of PROSEWARE.LAB" "says the KDC cannot be reached"
err_one_line "in one line"

expect 0 "lab up brings the KDC back" "$KASA" lab up --dir "$LAB"
expect 0 "and kasa works again" "$KASA" account show 'CASARRAY-ASA$'

# Wrong credentials and a broken configuration are not outages: they say so.
cp "$KASA_CONFIG" "$T_WORK/bad.conf"
sed -i "s|keytab = .*|keytab = $T_WORK/missing.keytab|" "$T_WORK/bad.conf"
expect 1 "a missing admin keytab" "$KASA" -c "$T_WORK/bad.conf" account list
err_has "cannot authenticate to kadmind" "says it cannot authenticate"
expect 1 "a missing kasa.conf" "$KASA" -c "$T_WORK/nope.conf" account list
err_has "cannot read $T_WORK/nope.conf" "names the file"
printf '[directory\n' >"$T_WORK/broken.conf"
expect 1 "a kasa.conf with a syntax error" "$KASA" -c "$T_WORK/broken.conf" account list
err_has "Syntax error" "says it is a syntax error"
err_one_line "in one line"

done_testing
