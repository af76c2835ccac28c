#!/bin/sh
# kasa lab up --ad on its own: a Samba AD domain controller on 127.0.0.20, checked with
# MIT's tools (kinit, kvno) and AD's own (samba-tool, ldbsearch, ldapsearch); status, a
# second AD lab refused while the first runs, and down stopping samba and every child,
# removing the address and the directory.
. "$(dirname "$0")/lib.sh"

if ! command -v samba >/dev/null 2>&1 || ! command -v samba-tool >/dev/null 2>&1; then
	echo "1..0 # SKIP samba is not installed (scripts/install-deps installs it)"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP the AD lab adds 127.0.0.20 to lo, which needs root"
	exit 0
fi

LAB2="$T_WORK/lab2"
trap '"$KASA" lab down --dir "$LAB2" >/dev/null 2>&1; cleanup' EXIT

alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
has_addr() { ip -o addr show dev lo | grep -q 'inet 127\.0\.0\.20/'; }
# Processes started with this lab's smb.conf (samba, and the smbd and winbindd it starts).
lab_procs() {
	for p in /proc/[0-9]*; do
		tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -q "$LAB/ad/etc/smb.conf\$" && echo "${p#/proc/}"
	done
}

start=$(date +%s%N)
lab_up --ad
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "# kasa lab up --ad took $ms ms"
ok "lab up --ad"
for f in krb5.conf kasa.conf admin.keytab alice.keytab admin.password alice.password lab.state ad/etc/smb.conf; do
	check "up wrote $f" test -s "$LAB/$f"
done
check "the keytabs and passwords are not readable by others" \
	test "$(stat -c %a "$LAB/alice.keytab" "$LAB/admin.keytab" "$LAB/admin.password" "$LAB/alice.password" | sort -u)" = 600
check "127.0.0.20 is on lo" has_addr
check "kasa.conf names the AD backend" grep -q 'backend = ad' "$LAB/kasa.conf"
check "kasa.conf names the LDAP URI and base DN" sh -c "grep -q 'ldap_uri = ldap://127.0.0.20' '$LAB/kasa.conf' && grep -q 'base_dn = DC=proseware,DC=lab' '$LAB/kasa.conf'"
check "lab env points at the lab" test "$KASA_CONFIG" = "$LAB/kasa.conf" -a "$KRB5_CONFIG" = "$LAB/krb5.conf"

expect 0 "lab status" "$KASA" lab status --dir "$LAB"
out_has "127.0.0.20:88" "status shows the KDC's port"
out_has "127.0.0.20:389" "status shows LDAP's port"
expect 0 "lab status --json" "$KASA" lab status --dir "$LAB" --json
SAMBA_PID=$(json samba.pid)
check "the samba pid is a running samba" sh -c "grep -q samba /proc/$SAMBA_PID/comm"
check "samba listens on 127.0.0.20 only" sh -c "ss -Htlnp | grep 'pid=$SAMBA_PID,' | awk '{print \$4}' | grep -qv '^127\\.0\\.0\\.20:' && exit 1 || exit 0"

expect 0 "kinit as alice with her keytab, from Samba's KDC" kinit -k -t "$LAB/alice.keytab" alice
expect 0 "klist shows alice's TGT" klist
out_has "krbtgt/PROSEWARE.LAB@PROSEWARE.LAB" "a TGT for the domain"
expect 0 "samba-tool spn add HTTP/x.proseware.lab to Administrator" \
	samba-tool spn add HTTP/x.proseware.lab Administrator -s "$LAB/ad/etc/smb.conf" -H "$LAB/ad/private/sam.ldb"
expect 0 "kvno HTTP/x.proseware.lab as alice" kvno HTTP/x.proseware.lab
out_has "HTTP/x.proseware.lab@PROSEWARE.LAB: kvno =" "a service ticket from the DC"
expect 0 "ldbsearch finds alice in sam.ldb" ldbsearch -H "$LAB/ad/private/sam.ldb" '(sAMAccountName=alice)' dn
out_has "dn: CN=alice,CN=Users,DC=proseware,DC=lab" "alice is an AD user"
expect 0 "kinit as Administrator with the admin keytab" kinit -k -t "$LAB/admin.keytab" Administrator@PROSEWARE.LAB
expect 0 "ldapsearch over SASL/GSSAPI finds alice" \
	ldapsearch -N -LLL -Q -Y GSSAPI -H ldap://127.0.0.20 -b DC=proseware,DC=lab '(sAMAccountName=alice)' dn
out_has "dn: CN=alice,CN=Users,DC=proseware,DC=lab" "the DC answers LDAP as Administrator"

expect 1 "a second AD lab while the first runs fails" "$KASA" lab up --ad --dir "$LAB2"
err_has "127.0.0.20 is taken" "and says the address is taken"
err_one_line "with one line"
check "the first lab's samba still runs" alive "$SAMBA_PID"
check "the address is still on lo" has_addr
expect 0 "the first lab still answers" kinit -k -t "$LAB/alice.keytab" alice

expect 0 "lab up --ad again says it runs" "$KASA" lab up --ad --dir "$LAB"
out_has "already runs" "and starts nothing"
expect 2 "lab up (MIT) on the AD lab's directory is refused" "$KASA" lab up --dir "$LAB"

# samba dies (with its children): lab up --ad starts it again on the same database, and
# the domain answers as before.
for p in $(lab_procs) $SAMBA_PID; do kill -9 "$p" 2>/dev/null; done
check "samba is gone" eventually sh -c "! kill -0 $SAMBA_PID 2>/dev/null || grep -q '^State:[[:space:]]*Z' /proc/$SAMBA_PID/status"
expect 1 "lab status says it is stopped" "$KASA" lab status --dir "$LAB"
out_has "stopped" "as stopped"
expect 0 "lab up --ad starts samba again" "$KASA" lab up --ad --dir "$LAB"
out_has "runs in" "and says the lab runs"
expect 0 "lab status is happy again" "$KASA" lab status --dir "$LAB" --json
SAMBA_PID=$(json samba.pid)
check "with a new samba" alive "$SAMBA_PID"
expect 0 "alice gets a ticket from the restarted DC" kinit -k -t "$LAB/alice.keytab" alice
expect 0 "and the SPN added before the restart is still there" kvno HTTP/x.proseware.lab

# A decoy that down must leave alone.
sleep 300 &
DECOY=$!
CHILDREN=$(lab_procs | tr '\n' ' ')
check "samba started children (smbd, winbindd)" test -n "$CHILDREN"
expect 0 "lab down" "$KASA" lab down --dir "$LAB"
out_has "removed 127.0.0.20 from lo" "down says it removed the address"
check "samba is gone" sh -c "! { kill -0 $SAMBA_PID 2>/dev/null && ! grep -q 'State:.*Z' /proc/$SAMBA_PID/status; }"
check "every process samba started is gone" test -z "$(lab_procs)"
check "127.0.0.20 is no longer on lo" sh -c '! ip -o addr show dev lo | grep -q "inet 127\.0\.0\.20/"'
check "the lab directory is gone" test ! -e "$LAB"
check "down left other processes alone" kill -0 "$DECOY"
kill "$DECOY"
expect 0 "lab down again has nothing to stop" "$KASA" lab down --dir "$LAB"

done_testing
