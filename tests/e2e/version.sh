#!/bin/sh
# kasa, kasad and kasa-httpd --version print "NAME VERSION" with meson.build's version
# (meson test passes it in) and exit 0, and each --help mentions --version. The bash
# completion, sourced in a plain bash without bash-completion, completes commands,
# sub-commands, options, files for log summary, and array names from a stand-in kasa
# (with the -c FILE given before the command), and offers none when kasa is slow.
# No lab: nothing here reaches a directory.
. "$(dirname "$0")/lib.sh"

: "${KASA_PROJECT_VERSION:?meson test sets it to the version in meson.build}"
: "${KASA_COMPLETION:?meson test sets it to tools/kasa/kasa.bash-completion}"
: "${KASAD:?}" "${KASA_HTTPD:?}"

# version_ok NAME BINARY: NAME --version is one line, "NAME VERSION"; --help names it.
version_ok() {
	expect 0 "$1 --version exits 0" "$2" --version
	check "$1 --version prints '$1 $KASA_PROJECT_VERSION'" [ "$T_OUT" = "$1 $KASA_PROJECT_VERSION" ]
	check "$1 --version writes nothing to stderr" [ -z "$T_ERR" ]
	expect 0 "$1 --help exits 0" "$2" --help
	out_has "--version" "$1 --help mentions --version"
}

version_ok kasa "$KASA"
version_ok kasad "$KASAD"
version_ok kasa-httpd "$KASA_HTTPD"

# completes WORD...: what the completion offers for the command line WORD... (its last
# word is the one being completed), one a line, sorted, as bash's own <Tab> would call it.
completes() {
	bash -c '. "$1" || exit 1
		shift
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		_kasa "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}" | sort' bash "$KASA_COMPLETION" "$@"
}

nl='
'
expect 0 "the completion is registered for kasa" bash -c '. "$1" && complete -p kasa' bash "$KASA_COMPLETION"
out_has "-F _kasa" "complete -p kasa names _kasa"

run completes kasa ro
check "kasa ro<Tab> completes to roll" [ "$T_OUT" = roll ]
run completes kasa account ''
check "kasa account <Tab> offers the account sub-commands" \
	[ "$T_OUT" = "create${nl}delete${nl}list${nl}show" ]
run completes kasa h
check "kasa h<Tab> completes to heal" [ "$T_OUT" = heal ]
run completes kasa -c kasa.conf -v spn d
check "after global options, kasa spn d<Tab> offers delete and duplicates" \
	[ "$T_OUT" = "delete${nl}duplicates" ]
run completes kasa --v
check "kasa --v<Tab> offers --verbose and --version" [ "$T_OUT" = "--verbose${nl}--version" ]
run completes kasa roll --d
check "kasa roll --d<Tab> completes to --dry-run" [ "$T_OUT" = --dry-run ]
run completes kasa lab member ''
check "kasa lab member <Tab> offers start and stop" [ "$T_OUT" = "start${nl}stop" ]
run completes kasa copy --timeout ''
check "nothing is offered for an option's value" [ -z "$T_OUT" ]

touch "$T_WORK/auth-cas1.csv" "$T_WORK/auth-cas2.csv"
run completes kasa log summary "$T_WORK/auth-cas1.csv" "$T_WORK/auth-"
check "kasa log summary completes files" \
	[ "$T_OUT" = "$T_WORK/auth-cas1.csv${nl}$T_WORK/auth-cas2.csv" ]

# A stand-in kasa that answers array list as kasa does, and says how it was called.
cat >"$T_WORK/kasa" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >"$T_WORK/args"
[ -e "$T_WORK/slow" ] && sleep 5
printf 'ARRAY                SHORT    ASA            MEMBERS\n'
printf 'outlook.proseware.lab  OUTLOOK  CASARRAY-ASA\$  2\n'
printf 'owa.proseware.lab      OWA      OWA-ASA\$       1\n'
EOF
chmod +x "$T_WORK/kasa"
run completes "$T_WORK/kasa" -c "$T_WORK/kasa.conf" roll ''
check "kasa roll <Tab> offers the arrays kasa array list names" \
	[ "$T_OUT" = "outlook.proseware.lab${nl}owa.proseware.lab" ]
check "array list is asked with the same -c FILE" \
	[ "$(cat "$T_WORK/args")" = "--config $T_WORK/kasa.conf array list" ]
for verb in status verify copy heal; do
	run completes "$T_WORK/kasa" "$verb" ou
	check "kasa $verb ou<Tab> completes to outlook.proseware.lab" \
		[ "$T_OUT" = outlook.proseware.lab ]
done
run completes "$T_WORK/kasa" roll outlook.proseware.lab ''
check "only the first operand is an array" [ -z "$T_OUT" ]
touch "$T_WORK/slow"
start=$(date +%s)
run completes "$T_WORK/kasa" roll ''
check "a slow kasa array list gives no array names" [ -z "$T_OUT" ]
check "... and does not hold up the completion" [ $(($(date +%s) - start)) -lt 4 ]
rm -f "$T_WORK/slow" "$T_WORK/args"
export KASA_COMPLETION_TIMEOUT=0
run completes "$T_WORK/kasa" roll ''
check "KASA_COMPLETION_TIMEOUT=0 offers no array names" [ -z "$T_OUT" ]
check "... and does not run kasa" [ ! -e "$T_WORK/args" ]
unset KASA_COMPLETION_TIMEOUT

done_testing
