#!/bin/sh
# A peer member: Apache httpd with mod_auth_gssapi, reading a keytab that a kasad keeps
# (shared with Apache's group, 0640), is a member of the array like the others and
# accepts Kerberos after each roll without a restart.
. "$(dirname "$0")/lib.sh"

: "${KASAD:?}"
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'
APACHE=$(command -v apache2 || echo /usr/sbin/apache2)
[ -x "$APACHE" ] || { echo "Bail out! apache2 is not installed (scripts/install-deps)"; exit 1; }
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
wait_port() { for _ in $(seq 100); do python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(0.1); sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))' "$1" "$2" && return 0; sleep 0.1; done; return 1; }

lab_up --members 1
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
CAS1_PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["members"][0]["port"])' "$T_WORK/lab.json")

# cas4: a kasad of its own whose keytab Apache's group may read.
chmod 0711 "$T_WORK"
M4="$T_WORK/cas4"
mkdir -m 0755 "$M4" "$M4/www"
mkdir -m 1777 "$M4/rcache"
echo "hello from Apache" >"$M4/www/index.html"
kadmin_local "addprinc -randkey host/cas4.proseware.lab" >/dev/null
kadmin_local "ktadd -k $M4/host.keytab host/cas4.proseware.lab" >/dev/null
echo "kasa/admin@PROSEWARE.LAB" >"$M4/acl"
KPORT=$(free_port 127.0.0.14)
"$KASAD" --foreground --listen 127.0.0.14 --port "$KPORT" --keytab "$M4/host.keytab" \
	--principal host/cas4.proseware.lab@PROSEWARE.LAB --managed-keytab "$M4/array.keytab" \
	--keytab-group www-data --acl "$M4/acl" --log "$M4/kasad.log" 2>>"$M4/kasad.out" &
KASAD4=$!
APORT=$(free_port 127.0.0.14)
cat >"$M4/apache.conf" <<EOF2
ServerRoot /etc/apache2
LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
LoadModule auth_gssapi_module /usr/lib/apache2/modules/mod_auth_gssapi.so
User www-data
Group www-data
ServerName outlook.proseware.lab
DefaultRuntimeDir $M4
Listen 127.0.0.14:$APORT
PidFile $M4/apache.pid
ErrorLog $M4/error.log
LogFormat "%u %s %r" kasa
CustomLog $M4/access.log kasa
DocumentRoot $M4/www
<Directory $M4/www>
	AuthType GSSAPI
	AuthName "kasa peer member"
	GssapiCredStore keytab:$M4/array.keytab
	GssapiAllowedMech krb5
	Require valid-user
</Directory>
EOF2
cleanup_apache() {
	[ -f "$M4/apache.pid" ] && kill "$(cat "$M4/apache.pid")" 2>/dev/null
	kill "$KASAD4" 2>/dev/null
	cleanup
}
trap cleanup_apache EXIT
check "cas4's kasad listens" wait_port 127.0.0.14 "$KPORT"

expect 0 "create the ASA" "$KASA" account create "$ASA" --computer
expect 0 "give it HTTP/$ARRAY" "$KASA" spn add "HTTP/$ARRAY" "$ASA"
expect 0 "create the array" "$KASA" array create $ARRAY --asa "$ASA"
expect 0 "add cas1" "$KASA" array add-member $ARRAY "cas1.proseware.lab:$CAS1_PORT" --address 127.0.0.11
expect 0 "add cas4, Apache's host" "$KASA" array add-member $ARRAY "cas4.proseware.lab:$KPORT" --address 127.0.0.14
expect 0 "roll" "$KASA" roll $ARRAY
check "cas4's keytab is readable by www-data (0640, group www-data)" \
	test "$(stat -c '%a %G' "$M4/array.keytab")" = "640 www-data"

# Apache's children run as www-data, who cannot enter the lab's directory (0700).
cp "$KRB5_CONFIG" "$M4/krb5.conf"
chmod 0644 "$M4/krb5.conf"
# setsid: Apache signals its whole process group when it stops.
KRB5_CONFIG="$M4/krb5.conf" KRB5RCACHEDIR="$M4/rcache" setsid "$APACHE" -f "$M4/apache.conf" -DFOREGROUND 2>>"$M4/error.log" &
wait_port 127.0.0.14 "$APORT"
APACHE_UP=$?
[ "$APACHE_UP" -eq 0 ] || sed "s/^/# /" "$M4/error.log" "$M4/apache.conf"
check "Apache listens" test "$APACHE_UP" -eq 0
APID=$(cat "$M4/apache.pid" 2>/dev/null)
URL="http://$ARRAY:$APORT/index.html"
R="$ARRAY:$APORT:127.0.0.14"

expect 0 "kinit as alice" kinit -k -t "$LAB/alice.keytab" alice
expect 0 "curl --negotiate to Apache" curl -s -f --negotiate -u : --resolve "$R" "$URL"
out_has "hello from Apache" "Apache served the page"
check "Apache's log names alice" eventually grep -q "^alice@PROSEWARE.LAB 200 " "$M4/access.log"

expect 0 "roll again, Apache running" "$KASA" roll $ARRAY
expect 0 "a fresh ticket, at the new kvno" sh -c "kdestroy; kinit -k -t '$LAB/alice.keytab' alice && kvno HTTP/$ARRAY"
out_has "kvno = 3" "kvno 3"
expect 0 "Apache accepts the new kvno" curl -s -f --negotiate -u : --resolve "$R" "$URL"
check "without a restart" test "$(cat "$M4/apache.pid")" = "$APID"
check "Apache logged alice twice" eventually sh -c "test \"\$(grep -c '^alice@PROSEWARE.LAB 200 ' '$M4/access.log')\" -eq 2"
expect 0 "kasa status counts Apache's host OK" "$KASA" status $ARRAY

done_testing
