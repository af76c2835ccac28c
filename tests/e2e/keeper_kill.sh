#!/bin/sh
# kasad's keeper SIGKILLed at random moments while it writes the member's keytab (issue 15):
# every time, the keytab is a complete set that klist -k reads (every principal of the
# array under every enctype, at each kvno it holds) and still holds the directory's kvno;
# the member, restarted, takes requests again and its keeper clears what a cut write left.
#
# KEEPER_KILLS kills (default 50; scripts/soak asks 1000). The writes come from kasa copy
# to the member (one keytab write per kvno, and one to retire) and, every fifth time, a
# kasa roll (stage and retire); a keep window of 30 s retires kvnos as the run goes, so the
# keytab grows and shrinks. A write (temporary file, fsync, rename) lasts a millisecond or
# two of the keeper's few per request, so a kill at a random moment rarely lands in one:
# one kill in three lands 0-400 ms after the writer starts, the others the moment the
# keeper's temporary keytab or state file appears (see aim). Lines "# soak: KEY VALUE"
# carry the figures scripts/soak writes to doc/RELIABILITY.md.
. "$(dirname "$0")/lib.sh"

KILLS=${KEEPER_KILLS:-50}
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
SPNS="HTTP/$ARRAY exchangeMDB/$ARRAY exchangeRFR/$ARRAY exchangeAB/$ARRAY"
PRINCS="$ASA $SPNS"
REALM=PROSEWARE.LAB
WRITER=
AIMER=
stop_all() {
	touch "$T_WORK/aim.stop"
	[ -n "$AIMER" ] && wait "$AIMER" 2>/dev/null
	[ -n "$WRITER" ] && wait "$WRITER" 2>/dev/null
	cleanup
}
trap stop_all EXIT

lab_up --members 2
labj() { "$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json" 2>/dev/null; }
labv() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T_WORK/lab.json" "$1"; }
labj
KT1=$(labv 'd["members"][0]["managed_keytab"]')
KT2=$(labv 'd["members"][1]["managed_keytab"]')
LOG2=$(labv 'd["members"][1]["log"]')
"$KASA" account create "$ASA" --computer >/dev/null
for spn in $SPNS; do "$KASA" spn add "$spn" "$ASA" >/dev/null; done
"$KASA" array create $ARRAY --asa "$ASA" >/dev/null
for i in 1 2; do
	"$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(labv "d['members'][$i-1]['port']")" \
		--address "127.0.0.1$i" >/dev/null
done
# kasa.conf with a keep window of 30 s (the lab's own file is left as it is).
cp "$KASA_CONFIG" "$T_WORK/kasa.conf"
printf '\tkeep_window = 30\n' >>"$T_WORK/kasa.conf"
KASA_CONFIG=$T_WORK/kasa.conf
export KASA_CONFIG
expect 0 "a first roll" "$KASA" roll $ARRAY
expect 0 "a second one" "$KASA" roll $ARRAY

dir_kvno() { kadmin_local "getprinc $1" | sed -n 's/.*Key: vno \([0-9]*\),.*/\1/p' | head -1; }
ENCTYPES=$(kadmin_local "getprinc $ASA" | sed -n 's/.*Key: vno [0-9]*, \([^ ,:]*\).*/\1/p' | sort -u | tr '\n' ' ')

# keytab_complete KEYTAB [KVNO]: klist -k reads it whole, each kvno in it holds every
# principal of the array under every enctype, and KVNO is among them; says what is wrong.
# (kvnos and names only: klist prints no key without -K.)
keytab_complete() {
	if [ ! -f "$1" ]; then
		echo "$1 is gone"
		return 1
	fi
	if ! klist -k -e "$1" >"$T_WORK/klist" 2>&1; then
		echo "klist -k cannot read $1: $(tail -n 1 "$T_WORK/klist")"
		return 1
	fi
	awk -v want="$PRINCS" -v enc="$ENCTYPES" -v realm="$REALM" -v must="${2:-}" '
		NR > 3 { if (!($1 in k)) { k[$1] = 1; nk++ }; have[$1 " " $2 " " $3] = 1 }
		END {
			n = split(want, P, " "); m = split(enc, E, " "); bad = 0
			if (nk == 0) { print "no entries"; exit 1 }
			if (must != "" && !(must in k)) { print "kvno " must " is lost"; bad = 1 }
			for (kv in k) for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
				if (!((kv " " P[i] "@" realm " (" E[j] ")") in have)) {
					print "kvno " kv " lacks " P[i] " " E[j]; bad = 1
				}
			exit bad
		}' "$T_WORK/klist"
}

# gone PID: the process ended (a zombie counts: its parent, not this test, reaps it).
gone() {
	for _ in $(seq 200); do
		case $(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) in "" | Z | X) return 0 ;; esac
		sleep 0.05
	done
	return 1
}
# aim PID PREFIX: in the background, SIGKILL PID the moment a file PREFIX* appears beside
# the keytab; back once it watches. Python polls the directory fast enough to land inside
# a write of a millisecond, mostly: when it has seen none by the time the writer ended
# (the writer wrote nothing, or the poller was off the CPU then), it kills then, and the
# kill counts as late.
aim() {
	rm -f "$T_WORK/aim" "$T_WORK/aim.ready" "$T_WORK/aim.stop"
	python3 - "$1" "$(dirname "$KT2")" "$2" "$T_WORK/aim.ready" "$T_WORK/aim.stop" \
		>"$T_WORK/aim" <<'EOF' &
import os, signal, sys, time
pid, d, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3]
os.listdir(d)
open(sys.argv[4], "w").close()
end = time.monotonic() + 30
while time.monotonic() < end and not os.path.exists(sys.argv[5]):
    if any(n.startswith(prefix) for n in os.listdir(d)):
        if pid > 0:
            os.kill(pid, signal.SIGKILL)
        print("hit")
        sys.exit(0)
if pid > 0:
    os.kill(pid, signal.SIGKILL)
print("late")
EOF
	AIMER=$!
	for _ in $(seq 100); do [ -f "$T_WORK/aim.ready" ] && return 0; sleep 0.01; done
}
no_leftovers() { ! ls "$KT2".tmp.* "$KT2".state.tmp.* >/dev/null 2>&1; }

torn=0 lost=0 stuck=0 cut=0 missed=0 rolls=0 random=0 aimed=0 late=0
kasad=$(labv 'd["members"][1]["pid"]')
start=$(date +%s)
for k in $(seq "$KILLS"); do
	keeper=$(pgrep -P "$kasad" | head -n 1)
	[ -n "$keeper" ] || { missed=$((missed + 1)); keeper=0; } # 0: nothing is killed
	AIMER=
	case $((k % 3)) in
	1) when="as it wrote the keytab"; aim "$keeper" "${KT2##*/}.tmp." ;;
	2) when="as it wrote the state file"; aim "$keeper" "${KT2##*/}.state.tmp." ;;
	esac
	if [ $((k % 5)) -eq 0 ]; then
		"$KASA" roll $ARRAY >"$T_WORK/w.out" 2>&1 &
		rolls=$((rolls + 1))
	else
		"$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab >"$T_WORK/w.out" 2>&1 &
	fi
	WRITER=$!
	if [ -z "$AIMER" ]; then
		ms=$(od -An -N2 -tu2 /dev/urandom | awk '{ print $1 % 400 }')
		when="$ms ms after the writer started"
		sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
		[ "$keeper" -gt 0 ] && kill -KILL "$keeper"
		random=$((random + 1))
	fi
	if wait "$WRITER"; then :; else cut=$((cut + 1)); fi
	WRITER=
	if [ -n "$AIMER" ]; then
		touch "$T_WORK/aim.stop"
		wait "$AIMER"
		AIMER=
		case $(cat "$T_WORK/aim") in hit) aimed=$((aimed + 1)) ;; *) late=$((late + 1)) ;; esac
	fi
	d=$(dir_kvno "$ASA")
	if ! why=$(keytab_complete "$KT2" "$d"); then
		case $why in *"is lost"* | *" is gone") lost=$((lost + 1)) ;; *) torn=$((torn + 1)) ;; esac
		echo "# kill $k, $when: $why"
	fi
	if ! why=$(keytab_complete "$KT1" "$d"); then
		torn=$((torn + 1))
		echo "# kill $k: cas1 (not killed): $why"
	fi
	# The member again: its kasad stops at its next request when its keeper is gone; it may
	# not have had one yet.
	kill -TERM "$kasad" 2>/dev/null
	if ! gone "$kasad" || ! "$KASA" lab member start cas2 --dir "$LAB" >"$T_WORK/start.out" 2>&1; then
		stuck=$((stuck + 1))
		echo "# kill $k: cas2 did not come back: $(cat "$T_WORK/start.out")"
		break
	fi
	labj
	kasad=$(labv 'd["members"][1]["pid"]')
	eventually no_leftovers || { torn=$((torn + 1)); echo "# kill $k: a temporary file stayed: $(ls "$KT2".*tmp*)"; }
done
took=$(($(date +%s) - start))
hits=$(grep -c 'left by an interrupted write' "$LOG2")
check "$KILLS kills of cas2's keeper: $torn keytabs torn or unreadable (klist -k)" test "$torn" -eq 0
check "$KILLS kills: $lost keytabs without the directory's kvno" test "$lost" -eq 0
check "after each, cas2 came back ($stuck did not)" test "$stuck" -eq 0
check "the keeper was there to kill each time ($missed missed)" test "$missed" -eq 0
check "$aimed kills the moment a temporary file appeared, $((random + late)) at other moments ($late after an aim that saw no write)" \
	test "$aimed" -gt 0
check "writes were cut: $cut of $KILLS writers failed, $hits kills left a temporary file (cleared on restart)" \
	test "$cut" -gt 0 -a "$hits" -gt 0
expect 0 "cas2 takes a copy again" "$KASA" copy $ARRAY --from cas1.proseware.lab --to cas2.proseware.lab
expect 0 "and a roll" "$KASA" roll $ARRAY
expect 0 "kasa status: both members OK" "$KASA" status $ARRAY
expect 0 "kasa verify: both accept a fresh ticket for every SPN" "$KASA" verify $ARRAY
echo "# soak: keeper_kills $KILLS"
echo "# soak: keeper_torn $torn"
echo "# soak: keeper_lost $lost"
echo "# soak: keeper_stuck $stuck"
echo "# soak: keeper_cut $cut"
echo "# soak: keeper_midwrite $hits"
echo "# soak: keeper_random $random"
echo "# soak: keeper_aimed $aimed"
echo "# soak: keeper_late $late"
echo "# soak: keeper_rolls $rolls"
echo "# soak: keeper_seconds $took"
done_testing
