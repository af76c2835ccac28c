#!/bin/sh
# kasad on its own: hostile and out-of-turn bytes get an error and kasad keeps serving;
# a silent peer stalls nobody; a principal not on the ACL is refused and logged; and
# kasad killed again and again while it writes its keytab always leaves one that MIT's
# klist -k reads, with complete kvnos.
. "$(dirname "$0")/lib.sh"

: "${MEMBERTOOL:?}" "${KASAD:?}"
export KASAD
lab_up --members 1
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
m() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["members"][0][sys.argv[2]])' "$T_WORK/lab.json" "$1"; }
HOST=cas1.proseware.lab
ADDR=$(m address)
PORT=$(m port)
KT=$(m managed_keytab)
LOG=$(m log)
P1='CASARRAY-ASA$@PROSEWARE.LAB'
P2='http/outlook.proseware.lab@PROSEWARE.LAB'
P3='HTTP/outlook.proseware.lab@PROSEWARE.LAB'

expect 0 "a status request" "$MEMBERTOOL" status $HOST "$ADDR" "$PORT"
out_has "ok: host/$HOST@PROSEWARE.LAB holds 0 kvnos" "names the member, holds nothing yet"
expect 0 "a stage request" "$MEMBERTOOL" stage $HOST "$ADDR" "$PORT" 1 "$P1" "$P2" "$P3"
check "klist -k reads the keytab: 3 principals x 2 enctypes at kvno 1" \
	test "$(klist -k "$KT" | awk '$1 == 1' | wc -l)" -eq 6

for kind in garbage oversized badtoken wrapped-first; do
	expect 0 "raw $kind bytes" "$MEMBERTOOL" raw "$ADDR" "$PORT" $kind
	case $kind in
	garbage | oversized) out_has "error frame: a frame of" "$kind: an error frame names the bad frame" ;;
	badtoken) out_has "error frame: authentication failed" "$kind: refused as a failed authentication" ;;
	wrapped-first) out_has "error frame: a frame out of turn" "$kind: refused as out of turn" ;;
	esac
	expect 0 "kasad still serves after $kind" "$MEMBERTOOL" status $HOST "$ADDR" "$PORT"
done

# A silent peer and a truncated frame hold up nobody; kasad drops them after its timeout.
"$MEMBERTOOL" raw "$ADDR" "$PORT" silent >"$T_WORK/silent.out" 2>&1 &
SILENT=$!
"$MEMBERTOOL" raw "$ADDR" "$PORT" truncated >"$T_WORK/truncated.out" 2>&1 &
TRUNC=$!
sleep 0.2
expect 0 "a status request while a silent and a truncated peer hang on" "$MEMBERTOOL" status $HOST "$ADDR" "$PORT"
wait $SILENT
check "kasad dropped the silent peer" grep -q "closed after 0 bytes" "$T_WORK/silent.out"
wait $TRUNC
check "kasad dropped the truncated frame" grep -q "closed after 0 bytes" "$T_WORK/truncated.out"
check "and logged it" grep -q "no handshake within" "$LOG"

# A principal not on the ACL: alice authenticates fine, and is refused.
sed "s|^\tprincipal = .*|\tprincipal = alice@PROSEWARE.LAB|; s|^\tkeytab = .*|\tkeytab = $LAB/alice.keytab|" "$KASA_CONFIG" >"$T_WORK/alice.conf"
before=$(klist -k "$KT" | sort)
KASA_CONFIG="$T_WORK/alice.conf" expect 1 "alice may not read status" "$MEMBERTOOL" status $HOST "$ADDR" "$PORT"
out_has "not on the member's ACL" "the refusal says why"
KASA_CONFIG="$T_WORK/alice.conf" expect 1 "alice may not take the keys (copy)" "$MEMBERTOOL" export $HOST "$ADDR" "$PORT"
out_has "not on the member's ACL" "refused too"
expect 0 "kasa's own principal may" "$MEMBERTOOL" export $HOST "$ADDR" "$PORT"
out_has "holds 1 kvno" "and gets the kvno it holds"
KASA_CONFIG="$T_WORK/alice.conf" expect 1 "alice may not stage" "$MEMBERTOOL" stage $HOST "$ADDR" "$PORT" 9 "$P1"
check "the keytab is unchanged" test "$(klist -k "$KT" | sort)" = "$before"
check "kasad logged the refusal of alice" grep -q "refused alice@PROSEWARE.LAB: not on the ACL" "$LOG"

# Crash kasad in the middle of keytab writes, many times.
bad=0
for i in $(seq 2 31); do
	"$MEMBERTOOL" stage $HOST "$ADDR" "$PORT" "$i" "$P1" "$P2" "$P3" >/dev/null 2>&1 &
	STAGER=$!
	sleep "0.0$(( (i * 7) % 10 ))"
	pid=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["members"][0]["pid"])' <<EOF2
$("$KASA" lab status --dir "$LAB" --json)
EOF2
)
	kill -9 $(pgrep -P "$pid") "$pid" 2>/dev/null
	wait $STAGER 2>/dev/null
	if ! klist -k "$KT" >"$T_WORK/kl" 2>&1; then
		bad=$((bad + 1))
	else
		# every kvno present is whole: 3 principals x 2 enctypes
		awk 'NR > 3 { n[$1]++ } END { for (k in n) if (n[k] != 6) exit 1 }' "$T_WORK/kl" || bad=$((bad + 1))
	fi
	"$KASA" lab member start cas1 --dir "$LAB" >/dev/null 2>&1 || bad=$((bad + 100))
done
check "30 crashes during writes: the keytab was always readable and whole" test "$bad" -eq 0
check "no temporary file left next to the keytab" sh -c "! ls '$KT'.tmp.* 2>/dev/null | grep -q ."
expect 0 "kasad serves after the crashes" "$MEMBERTOOL" status $HOST "$ADDR" "$PORT"

# kasad from a configuration file, telling a service manager when it is ready.
cat >"$T_WORK/kasad.conf" <<EOF2
[kasad]
	keytab = $(m host_keytab)
	principal = host/$HOST@PROSEWARE.LAB
	managed_keytab = $T_WORK/second.keytab
	acl = $(m acl)
	listen = 127.0.0.21
	port = $PORT
	pidfile = $T_WORK/second.pid
	log = $T_WORK/second.log
	keytab_group = nogroup
EOF2
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(20)
print(s.recv(64).decode(), flush=True)
print(s.recv(64).decode())' "$T_WORK/notify" >"$T_WORK/notify.out" 2>&1 &
NOTIFY=$!
eventually test -S "$T_WORK/notify" # bound before kasad says anything to it
NOTIFY_SOCKET="$T_WORK/notify" "$KASAD" --foreground --config "$T_WORK/kasad.conf" &
SECOND=$!
eventually grep -qx "READY=1" "$T_WORK/notify.out"
check "kasad told the service manager READY=1" grep -qx "READY=1" "$T_WORK/notify.out"
check "and wrote its pidfile" test "$(cat "$T_WORK/second.pid" 2>/dev/null)" = "$SECOND"
expect 0 "kasad from --config serves" "$MEMBERTOOL" status $HOST 127.0.0.21 "$PORT"
expect 0 "and takes staged keys" "$MEMBERTOOL" stage $HOST 127.0.0.21 "$PORT" 1 "$P1"
check "keytab_group = nogroup: the keytab is 0640 and nogroup's" \
	test "$(stat -c '%a %G' "$T_WORK/second.keytab")" = "640 nogroup"
# logrotate: the log moved away, SIGHUP; both processes (the network one and the keeper)
# write the next lines to a new file there, and kasad goes on serving.
mv "$T_WORK/second.log" "$T_WORK/second.log.1"
old_lines=$(wc -l <"$T_WORK/second.log.1")
kill -HUP "$SECOND"
check "kasad says it reopened its log, in a new log file" eventually grep -q "reopened the log (SIGHUP)" "$T_WORK/second.log"
expect 0 "a stage after SIGHUP" "$MEMBERTOOL" stage $HOST 127.0.0.21 "$PORT" 2 "$P1"
check "the keeper's line about it is in the new log" grep -q "kvno 2" "$T_WORK/second.log"
check "the old log got no new line" test "$(wc -l <"$T_WORK/second.log.1")" -eq "$old_lines"
check "kasad still runs" kill -0 "$SECOND"
kill "$SECOND"
wait "$SECOND"
check "a clean stop exits 0 and removes the pidfile" test $? -eq 0 -a ! -e "$T_WORK/second.pid"
wait $NOTIFY
check "and told the service manager STOPPING=1" grep -qx "STOPPING=1" "$T_WORK/notify.out"

# Its keeper killed: kasad sees it at once, says so, and exits 1 (not 0), so that its
# service manager (Restart=on-failure) starts it again.
"$KASAD" --foreground --config "$T_WORK/kasad.conf" &
THIRD=$!
eventually test -s "$T_WORK/second.pid"
eventually pgrep -P "$THIRD" >/dev/null
kill -9 "$(pgrep -P "$THIRD")"
t0=$(date +%s)
wait "$THIRD"
st=$?
check "kasad exits 1 when its keeper dies (exit $st)" test "$st" -eq 1
check "within a few seconds, without a request to notice it" test $(($(date +%s) - t0)) -le 3
check "and its log says why" grep -q "the keeper is gone; stopping" "$T_WORK/second.log"

# kasad as an unprivileged user (what its systemd unit does: User=kasa), here nobody
# (65534): its own keytab, config and state readable and writable by it alone.
NB="$T_WORK/nobody"
mkdir -p "$NB"
chmod 711 "$T_WORK"
cp "$(m host_keytab)" "$NB/host.keytab"
cp "$(m acl)" "$NB/acl"
cp "$KRB5_CONFIG" "$NB/krb5.conf"
sed "s|^\tkeytab = .*|\tkeytab = $NB/host.keytab|; s|^\tmanaged_keytab = .*|\tmanaged_keytab = $NB/array.keytab|;
	s|^\tacl = .*|\tacl = $NB/acl|; s|^\tpidfile = .*|\tpidfile = $NB/kasad.pid|; s|^\tlog = .*|\tlog = $NB/kasad.log|;
	/keytab_group/d" \
	"$T_WORK/kasad.conf" >"$NB/kasad.conf"
# The build tree may sit where 65534 cannot reach (a 0700 checkout): kasad and libkasa
# are copied next to its files, as a package would install them where anyone reads them.
mkdir -p "$NB/lib"
cp "$KASAD" "$NB/kasad"
cp "$(ldd "$KASAD" | awk '/libkasa/ { print $3 }')" "$NB/lib/"
chown -R 65534:65534 "$NB"
chmod 600 "$NB/host.keytab"
KRB5_CONFIG="$NB/krb5.conf" KRB5RCACHEDIR="$NB" LD_LIBRARY_PATH="$NB/lib" \
	setpriv --reuid=65534 --regid=65534 --clear-groups "$NB/kasad" --foreground --config "$NB/kasad.conf" &
NOBODY=$!
for _ in $(seq 50); do [ -s "$NB/kasad.pid" ] && break; sleep 0.1; done
check "kasad runs as uid 65534" sh -c "grep -q '^Uid:[[:space:]]*65534[[:space:]]' /proc/\$(cat '$NB/kasad.pid')/status"
expect 0 "it answers a status request" "$MEMBERTOOL" status $HOST 127.0.0.21 "$PORT"
expect 0 "and takes staged keys" "$MEMBERTOOL" stage $HOST 127.0.0.21 "$PORT" 1 "$P1" "$P2"
check "into a keytab of its own (owner 65534, mode 0600) that klist reads" sh -c "
	test \"\$(stat -c '%u %a' '$NB/array.keytab')\" = '65534 600' &&
	test \"\$(klist -k '$NB/array.keytab' | awk '\$1 == 1' | wc -l)\" -eq 4"
kill "$NOBODY"
wait "$NOBODY"
check "and stops cleanly" test $? -eq 0

# The same started as root with --user nobody: both processes (network and keeper) become
# 65534 once listening.
rm -f "$NB/kasad.pid" "$NB/array.keytab" "$NB/array.keytab.state"
KRB5_CONFIG="$NB/krb5.conf" KRB5RCACHEDIR="$NB" "$KASAD" --foreground --config "$NB/kasad.conf" \
	--user nobody &
NOBODY=$!
for _ in $(seq 50); do [ -s "$NB/kasad.pid" ] && break; sleep 0.1; done
expect 0 "kasad --user nobody answers a status request" "$MEMBERTOOL" status $HOST 127.0.0.21 "$PORT"
uid_of() { sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }
check "its network process is uid 65534" test "$(uid_of "$NOBODY")" = 65534
check "and so is its keeper" test "$(uid_of "$(pgrep -P "$NOBODY" | head -n 1)")" = 65534
expect 0 "it takes staged keys" "$MEMBERTOOL" stage $HOST 127.0.0.21 "$PORT" 1 "$P1"
check "into a keytab that is 65534's" test "$(stat -c '%u' "$NB/array.keytab")" = 65534
kill "$NOBODY"
wait "$NOBODY"
check "and stops cleanly" test $? -eq 0
# Under systemd, stderr is the journal ($JOURNAL_STREAM names it): lines carry their level
# as "<N>" and no time or name, which the journal adds.
JF="$T_WORK/journal.txt"
: >"$JF"
JOURNAL_STREAM=$(stat -c '%d:%i' "$JF") "$KASAD" --foreground --listen 127.0.0.21 --port "$PORT" \
	--keytab "$(m host_keytab)" --principal "host/$HOST@PROSEWARE.LAB" \
	--managed-keytab "$T_WORK/j.keytab" --acl "$T_WORK/no-such-acl" --pidfile "$T_WORK/j.pid" 2>>"$JF" &
JPID=$!
for _ in $(seq 50); do [ -s "$T_WORK/j.pid" ] && break; sleep 0.1; done
"$MEMBERTOOL" status $HOST 127.0.0.21 "$PORT" >/dev/null 2>&1
kill "$JPID"
wait "$JPID"
check "journal: the start is info (<6>), with no time of its own" grep -q '^<6>listening on 127.0.0.21' "$JF"
check "an ACL it cannot read is an error (<3>)" grep -q '^<3>cannot read ACL' "$JF"
check "the refusal is a warning (<4>)" grep -q '^<4>.*refused' "$JF"
check "every line has a level" sh -c "! grep -qv '^<[346]>' '$JF'"
expect 2 "--user that is no user" "$KASAD" --managed-keytab x --acl y --user no-such-user
err_has "--user no-such-user is not a user" "names it"

# kasad's own usage errors.
printf '[kasad]\n\tmanaged_keytab = x\n\tacl = y\n\tkeytab_group = no-such-group\n' >"$T_WORK/nogroup.conf"
expect 2 "kasad with a keytab_group that is no group" "$KASAD" --config "$T_WORK/nogroup.conf"
err_has "keytab_group no-such-group is not a group" "names it"
check "in one line" test "$(printf '%s\n' "$T_ERR" | wc -l)" -eq 1
expect 2 "kasad without --managed-keytab" "$KASAD" --acl /dev/null
expect 2 "kasad with a bad port" "$KASAD" --managed-keytab x --acl y --port 99999
expect 2 "kasad with an empty --max-pending" "$KASAD" --managed-keytab x --acl y --max-pending ''
err_has "--max-pending  is not a number from 1 to 65536" "names the flag and the range"
printf '[kasad]\n\tmanaged_keytab = x\n\tacl = y\n\thandshake_timeout = 50\n' >"$T_WORK/bad.conf"
expect 2 "kasad with handshake_timeout out of range in its config" "$KASAD" --config "$T_WORK/bad.conf"
err_has "[kasad] handshake_timeout 50 is not a number from 100 to 600000" "names the file's key and the range"
expect 0 "kasad --help" "$KASAD" --help
out_has "--managed-keytab" "lists its flags"

done_testing
