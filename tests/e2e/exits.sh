#!/bin/sh
# Exit statuses a new administrator meets (issue 13, item 7), held to kasa(1)'s EXIT
# STATUS: a name that does not exist in the directory (an array, a member of an array,
# an account, an SPN) is 1, a problem found with nothing changed, in every verb; 2 is for
# malformed usage only. Also: kasa log --help says what log summary does, a file with no
# auth-log line is an error, and a syntax error in kasa.conf (or kasad's or kasa-httpd's
# --config) names its file and line; kasad --help does not offer its test hooks.
. "$(dirname "$0")/lib.sh"

: "${KASAD:?}" "${KASA_HTTPD:?}"
ARRAY=outlook.proseware.lab
ASA='CASARRAY-ASA$'

# refused STATUS DESCRIPTION CMD...: exits STATUS with one "kasa: " line on stderr.
refused() {
	want=$1
	desc=$2
	shift 2
	expect "$want" "$desc: exit $want" "$@"
	err_one_line "$desc: one line on stderr"
}

# kasa log.
expect 0 "kasa log --help" "$KASA" log --help
out_has "usage: kasa log summary FILE..." "names the verb and its files"
out_has "per member and per hour" "says what the summary counts"
out_has "--json" "names --json"
out_has "empty file counts nothing" "says what an empty file does"
refused 1 "log summary /etc/passwd (no auth-log line at all)" "$KASA" log summary /etc/passwd
err_has "/etc/passwd holds no kasa-httpd auth-log line" "names the file"
cat >"$T_WORK/mixed.log" <<'EOF'
"2026-11-24T20:01:02Z","cas1","127.0.0.1","alice@PROSEWARE.LAB","HTTP/outlook.proseware.lab","Kerberos","2","aes256-cts-hmac-sha1-96","ok",""
not an auth-log line
EOF
expect 0 "log summary of a log with a good and a bad line" "$KASA" log summary "$T_WORK/mixed.log"
out_has "cas1" "counts the good line"
err_has "skipped 1 line" "warns about the bad one"
: >"$T_WORK/empty.log"
expect 0 "log summary of an empty log (a member nobody used yet)" "$KASA" log summary "$T_WORK/empty.log"
refused 1 "log summary of a good log and /etc/passwd" \
	"$KASA" log summary "$T_WORK/mixed.log" /etc/passwd

# A syntax error in a configuration names its file and line.
printf '[directory]\n\tbackend = mit\n# a comment\n\trealm PROSEWARE.LAB\n' >"$T_WORK/bad.conf"
refused 1 "kasa with a relation without =" "$KASA" -c "$T_WORK/bad.conf" account list
err_has "$T_WORK/bad.conf:4: " "names the file and line 4"
printf '[directory]\n\tbackend = mit\n[array\n' >"$T_WORK/bad2.conf"
refused 1 "kasa with an unclosed section" "$KASA" -c "$T_WORK/bad2.conf" status
err_has "$T_WORK/bad2.conf:3: " "names line 3"
printf '[directory]\n\tbackend = mit\n\t}\n' >"$T_WORK/bad3.conf"
refused 1 "kasa with a stray }" "$KASA" -c "$T_WORK/bad3.conf" account list
err_has "$T_WORK/bad3.conf:3: " "names line 3"
printf '[kasad]\n\tmanaged_keytab = x\n\tacl y\n' >"$T_WORK/kasad.conf"
expect 1 "kasad --config with a syntax error" "$KASAD" --config "$T_WORK/kasad.conf"
err_has "kasad: $T_WORK/kasad.conf:3: " "kasad names the file and line"
printf '[kasa-httpd]\n\tkeytab x\n' >"$T_WORK/httpd.conf"
expect 1 "kasa-httpd --config with a syntax error" "$KASA_HTTPD" --config "$T_WORK/httpd.conf"
err_has "kasa-httpd: $T_WORK/httpd.conf:2: " "kasa-httpd names the file and line"

# kasad's test hook works but is not advertised.
expect 0 "kasad --help" "$KASAD" --help
case $T_OUT in
*clock-offset*) not_ok "kasad --help does not offer --clock-offset" "$T_OUT" ;;
*) ok "kasad --help does not offer --clock-offset" ;;
esac
expect 2 "kasad still parses --clock-offset (a bad value is bad usage)" \
	"$KASAD" --managed-keytab x --acl y --clock-offset x

# The documents a new administrator reads first.
SRC=$(cd "$(dirname "$0")/../.." && pwd)
# synopsis_has VERB OPTION: kasa(1)'s SYNOPSIS line for "kasa VERB" names OPTION.
synopsis_has() {
	v=$(printf '%s' "$1" | sed 's/-/\\\\-/g')
	o=$(printf '%s' "$2" | sed 's/-/\\\\-/g')
	awk -v head=".B kasa $v" '/^\.SH DESCRIPTION/ { exit } $0 == head { on = 1; next }
		on && /^\.(br|PP)$/ { on = 0 } on { print }' "$SRC/doc/kasa.1" | grep -q -e "$o"
}
for v in roll copy heal status verify; do
	check "kasa(1) SYNOPSIS: kasa $v --timeout" synopsis_has "$v" --timeout
	expect 0 "kasa $v --help" "$KASA" $v --help
	out_has "--timeout" "names --timeout"
done
check "kasa(1) SYNOPSIS: kasa array add-member --http-port" synopsis_has "array add-member" --http-port
check "kasa(1) SYNOPSIS: kasa diagnose --max-skew" synopsis_has diagnose --max-skew
expect 0 "kasa diagnose --help" "$KASA" diagnose --help
out_has "--max-skew" "names --max-skew"
check "kasa-httpd(8) has an EXIT STATUS section" grep -q '^\.SH EXIT STATUS' "$SRC/doc/kasa-httpd.8"
check "kasad(8) does not offer the test hook --clock-offset" \
	sh -c '! grep -q "clock.*offset" "$1"' sh "$SRC/doc/kasad.8"
check "README.md links nothing outside the tree" sh -c '! grep -q "\.\./shared" "$1"' sh "$SRC/README.md"
check "README.md's exit statuses name 3" grep -q 'exit status.*3\|3 partly' "$SRC/README.md"
check "README.md's tour adds HTTP/ as clients ask for it" \
	grep -q "^kasa spn add HTTP/outlook.proseware.lab" "$SRC/README.md"

# A lab with an array of two members.
lab_up --members 2
"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
m() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1][sys.argv[3]])' "$T_WORK/lab.json" "$1" "$2"; }
"$KASA" account create "$ASA" --computer >/dev/null
"$KASA" spn add "HTTP/$ARRAY" "$ASA" >/dev/null
"$KASA" array create $ARRAY --asa "$ASA" >/dev/null
for i in 1 2; do
	"$KASA" array add-member $ARRAY "cas$i.proseware.lab:$(m $i port)" --address "$(m $i address)" >/dev/null
done
expect 0 "roll" "$KASA" roll $ARRAY
"$KASA" array show $ARRAY --json >"$T_WORK/array.before"
principals >"$T_WORK/princs.before"

# An unknown array: 1 in every verb that takes one.
NOARRAY=nosuch.proseware.lab
refused 1 "array show of an unknown array" "$KASA" array show $NOARRAY
refused 1 "array delete of an unknown array" "$KASA" array delete $NOARRAY
refused 1 "array add-member to an unknown array" "$KASA" array add-member $NOARRAY cas1.proseware.lab
refused 1 "array remove-member from an unknown array" "$KASA" array remove-member $NOARRAY cas1.proseware.lab
refused 1 "roll of an unknown array" "$KASA" roll $NOARRAY
refused 1 "roll --dry-run of an unknown array" "$KASA" roll $NOARRAY --dry-run
refused 1 "roll --resume of an unknown array" "$KASA" roll --resume $NOARRAY
refused 1 "copy of an unknown array" "$KASA" copy $NOARRAY --from cas1 --to cas2
refused 1 "heal of an unknown array" "$KASA" heal $NOARRAY
refused 1 "status of an unknown array" "$KASA" status $NOARRAY
refused 1 "verify of an unknown array" "$KASA" verify $NOARRAY
expect 1 "diagnose of a name nobody serves: a problem found" "$KASA" diagnose $NOARRAY

# An unknown member of a known array.
refused 1 "copy --from a member that does not exist" "$KASA" copy $ARRAY --from nosuch --to cas2
err_has "nosuch is not a member of $ARRAY" "names it"
refused 1 "copy --to a member that does not exist" "$KASA" copy $ARRAY --from cas1 --to nosuch
refused 1 "roll --members naming a member that does not exist" "$KASA" roll $ARRAY --members nosuch
err_has "nosuch is not a member of $ARRAY" "names it"
refused 1 "roll --members cas1,nosuch" "$KASA" roll $ARRAY --members cas1,nosuch.proseware.lab
refused 1 "array remove-member of a member that does not exist" \
	"$KASA" array remove-member $ARRAY nosuch
err_has "nosuch is not a member of $ARRAY" "names it"

# An unknown account.
NOACCT='NOSUCH-ASA$'
refused 1 "account show of an unknown account" "$KASA" account show "$NOACCT"
refused 1 "account delete of an unknown account" "$KASA" account delete "$NOACCT"
refused 1 "spn add to an unknown account" "$KASA" spn add HTTP/new.proseware.lab "$NOACCT"
refused 1 "spn delete from an unknown account" "$KASA" spn delete "HTTP/$ARRAY" "$NOACCT"
refused 1 "spn list of an unknown account" "$KASA" spn list "$NOACCT"
refused 1 "array create with an unknown ASA" "$KASA" array create new.proseware.lab --asa "$NOACCT"

# An unknown SPN.
refused 1 "spn query of an SPN nobody owns" "$KASA" spn query HTTP/nosuch.proseware.lab
refused 1 "spn delete of an SPN nobody owns" "$KASA" spn delete HTTP/nosuch.proseware.lab "$ASA"

# Malformed names stay bad usage.
refused 2 "a malformed SPN" "$KASA" spn query http/
refused 2 "a malformed account name" "$KASA" account show 'bad name$'
refused 2 "a malformed array name" "$KASA" array show 'bad..name'
refused 2 "a malformed member name" "$KASA" roll $ARRAY --members 'bad..name'

# Nothing above changed anything.
"$KASA" array show $ARRAY --json >"$T_WORK/array.after"
check "the array is unchanged" cmp -s "$T_WORK/array.before" "$T_WORK/array.after"
principals >"$T_WORK/princs.after"
check "the directory's principals are unchanged" cmp -s "$T_WORK/princs.before" "$T_WORK/princs.after"
expect 0 "and the array is healthy" "$KASA" status $ARRAY

# An array that exists but has no members yet: a problem found, not bad usage.
expect 0 "an array with no members" "$KASA" array create empty.proseware.lab --asa "$ASA"
refused 1 "roll of an array with no members" "$KASA" roll empty.proseware.lab
err_has "has no members" "says so"
refused 1 "verify of an array with no members" "$KASA" verify empty.proseware.lab

done_testing
