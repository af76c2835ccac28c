#!/bin/sh
# A hundred members (issue 15): kasa lab up --members 100 starts them all at once (cas1..9
# on 127.0.0.11..19, cas10..100 on 127.0.2.10..100), each a kasad and a kasa-httpd of its
# own with its own state directory, keytab and logs; an array of all of them rolls, and
# kasa status says every one is OK at the new kvno, which klist -k finds in every
# member's keytab. lab down stops every process it started.
. "$(dirname "$0")/lib.sh"

ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
N=100

t0=$(date +%s%N)
lab_up --members $N
echo "# kasa lab up --members $N took $((($(date +%s%N) - t0) / 1000000)) ms"
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
python3 - "$T_WORK/lab.json" >"$T_WORK/members" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for i, m in enumerate(d["members"]):
    print("cas%d.proseware.lab:%d %s %s %d %d" % (i + 1, m["port"], m["address"], m["managed_keytab"],
                                                  m["pid"] or 0, m["http"]["pid"] or 0))
EOF
check "$N members in lab status" test "$(wc -l <"$T_WORK/members")" -eq $N
check "each on its own address, cas100 on 127.0.2.100" sh -c \
	"test \$(cut -d' ' -f2 '$T_WORK/members' | sort -u | wc -l) -eq $N && grep -q '^cas100.proseware.lab:[0-9]* 127.0.2.100 ' '$T_WORK/members'"
check "each with its own directory" test "$(cut -d' ' -f3 "$T_WORK/members" | xargs -n1 dirname | sort -u | wc -l)" -eq $N
check "all $N kasad and $N kasa-httpd run" sh -c \
	"for p in \$(cut -d' ' -f4,5 '$T_WORK/members'); do kill -0 \$p || exit 1; done"

"$KASA" account create "$ASA" --computer >/dev/null
"$KASA" spn add "HTTP/$ARRAY" "$ASA" >/dev/null
"$KASA" array create $ARRAY --asa "$ASA" >/dev/null
bad=0
while read -r hp addr _; do
	"$KASA" array add-member $ARRAY "$hp" --address "$addr" >/dev/null 2>&1 || bad=$((bad + 1))
done <"$T_WORK/members"
check "$N members added to the array" test $bad -eq 0

t0=$(date +%s%N)
expect 0 "roll to $N members" "$KASA" roll $ARRAY
echo "# the roll to $N members took $((($(date +%s%N) - t0) / 1000000)) ms"
out_has "to kvno 2" "the roll says kvno 2"
expect 0 "kasa status: all $N OK" "$KASA" status $ARRAY --json
check "status lists $N members, each OK and holding kvno 2, the directory's" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
ms = d["members"]
ok = d["directory_kvno"] == 2 and len(ms) == 100 and all(
    m["verdict"] == "OK" and any(k["kvno"] == 2 for k in m["kvnos"]) for m in ms)
sys.exit(0 if ok else 1)' "$T_OUT"
check "klist -k finds kvno 2 in every member's keytab" sh -c \
	"for kt in \$(cut -d' ' -f3 '$T_WORK/members'); do klist -k \"\$kt\" | grep -q '^ *2 HTTP/$ARRAY@' || exit 1; done"

expect 0 "lab down" "$KASA" lab down --dir "$LAB"
# (gone, or a zombie its new parent has not reaped yet)
check "every kasad and kasa-httpd it started is gone" sh -c \
	"for p in \$(cut -d' ' -f4,5 '$T_WORK/members'); do s=\$(ps -o stat= -p \$p); case \"\$s\" in ''|Z*) ;; *) exit 1;; esac; done"
done_testing
