#!/bin/sh
# Every kasa verb and sub-verb with bad arguments: none at all, an option missing its
# value, empty strings, a 10,000-character argument, repeated options and operands,
# unknown options. Each must end with exit 2 (usage) or 1 with a one-line "kasa: " error,
# never a signal or a sanitizer report, and change nothing: kasa.conf names a directory
# that cannot be reached, and the lab verbs get a --dir that holds no lab. At the end, the
# table is held against the CLI's own help: a verb or an option the help names that no
# row covers fails the test.
. "$(dirname "$0")/lib.sh"

BIG=$(printf '%10000s' '' | tr ' ' x)
mkdir "$T_WORK/cwd"
cat >"$T_WORK/krb5.conf" <<EOF
[libdefaults]
	default_realm = NOWHERE.INVALID
	dns_lookup_kdc = false
	dns_lookup_realm = false
[realms]
	NOWHERE.INVALID = {
		kdc = 127.0.0.1:1
		admin_server = 127.0.0.1:1
	}
EOF
cat >"$T_WORK/kasa.conf" <<EOF
[directory]
	backend = mit
	realm = NOWHERE.INVALID
	admin_server = 127.0.0.1:1
	principal = kasa/admin@NOWHERE.INVALID
	keytab = $T_WORK/none.keytab
EOF
export KASA_CONFIG="$T_WORK/kasa.conf" KRB5_CONFIG="$T_WORK/krb5.conf"
export KRB5CCNAME="FILE:$T_WORK/ccache" KRB5_KTNAME="FILE:$T_WORK/none.keytab"
unset KASA_LAB_DIR KRB5_KDC_PROFILE
# The default lab directory is ./lab: any verb that wrongly used it would leave it here.
cd "$T_WORK/cwd" || exit 1

# k WANT CMD...: run kasa CMD with no stdin and judge how it ended. WANT is "2" when only
# usage is right, "12" when a refusal (1) is right too, "0" for help, "012" when the
# arguments are valid (lab down with no lab: nothing to stop), "3" for status --nagios
# (UNKNOWN: the directory cannot be reached).
k() {
	want=$1
	shift
	"$KASA" "$@" </dev/null >"$T_WORK/out" 2>"$T_WORK/err"
	st=$?
	desc=kasa
	for a in "$@"; do
		if [ -z "$a" ]; then
			a="''"
		elif [ ${#a} -gt 200 ]; then
			a="<${#a} characters>"
		fi
		desc="$desc $a"
	done
	first=$(head -n 1 "$T_WORK/err")
	lines=$(wc -l <"$T_WORK/err")
	why=""
	if grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' -e 'runtime error:' \
		"$T_WORK/err"; then
		why="a sanitizer report"
	elif [ "$st" -ge 128 ]; then
		why="killed by signal $((st - 128))"
	else
		case "$want" in
		*"$st"*) ;;
		*) why="exit $st, expected one of $want" ;;
		esac
	fi
	if [ -z "$why" ] && [ "$st" -eq 1 ]; then
		case "$first" in
		"kasa: "*) [ "$lines" -eq 1 ] || why="$lines lines on stderr" ;;
		*) why="the error does not start with kasa:" ;;
		esac
	elif [ -z "$why" ] && [ "$st" -eq 2 ]; then
		case "$first" in
		"kasa: "* | "usage: "*) ;;
		*) why="no usage line" ;;
		esac
	fi
	if [ -z "$why" ]; then
		ok "$desc: $st"
	else
		not_ok "$desc: $why" "stderr: $(head -c 600 "$T_WORK/err")"
	fi
}

# verb "WORDS" BARE N OP1 OP2 "CONTEXT" "VALUE-OPTIONS" "FLAGS" [ZERO]: the table row of
# one verb. BARE: the exit statuses right for the verb with no arguments at all. N
# operands, OP1 and OP2 valid-looking ones; CONTEXT options that make the command whole
# (or point it at the test's lab directory); the options that take a value; flags. ZERO
# is "0" when the verb may succeed without a directory (lab down with no lab).
verb() {
	words=$1 bare=$2 n=$3 op1=$4 op2=$5 req=$6 vopts=$7 flags=$8 zero=${9:-}
	row "$words" "$req $vopts $flags"
	set -f
	# no arguments; only the help; unknown options
	k "$bare" $words
	k 0 $words --help
	k 2 $words --no-such-option
	k 2 $words -Z
	withops 2 "$op1" "$op2" --no-such-option
	# operands: one too many (log summary takes any number of files), empty, 10k characters
	case $words in
	"log summary") withops 12 "$op1" "$op2" "$op1" ;;
	*) withops 2 "$op1" "$op2" extra ;;
	esac
	if [ "$n" -ge 1 ]; then
		withops 12 "" "$op2"
		withops 12 "$BIG" "$op2"
	fi
	if [ "$n" -ge 2 ]; then
		withops 12 "$op1" ""
		withops 12 "$op1" "$BIG"
		k 2 $words "$op1" $req
	fi
	# each option: missing its value (last, and alone), empty, 10k, given twice
	for o in $vopts; do
		withops 2 "$op1" "$op2" "$o"
		k 2 $words "$o"
		withops "${zero}12" "$op1" "$op2" "$o" ""
		withops "${zero}12" "$op1" "$op2" "$o" "$BIG"
		withops "${zero}12" "$op1" "$op2" "$o" "$BIG" "$o" ""
	done
	for f in $flags; do
		case $f in
		--nagios) withops 3 "$op1" "$op2" "$f" "$f" ;;
		*) withops "${zero}12" "$op1" "$op2" "$f" "$f" ;;
		esac
	done
	set +f
}

# row "WORDS" "OPTIONS": the table has a row for kasa WORDS that covers OPTIONS (for the
# check against the help at the end).
: >"$T_WORK/rows"
row() {
	printf '%s\t %s \n' "$1" "$2" >>"$T_WORK/rows"
}

# withops WANT A B ARGS...: kasa WORDS, the verb's first N of A B, REQUIRED, then ARGS.
withops() {
	w=$1 a=$2 b=$3
	shift 3
	case $n in
	0) k "$w" $words $req "$@" ;;
	1) k "$w" $words "$a" $req "$@" ;;
	*) k "$w" $words "$a" "$b" $req "$@" ;;
	esac
}

ARRAY=outlook.proseware.lab
NOFILE="$T_WORK/no-such.log"

# The global options and the command itself.
k 2
k 2 -c
k 2 --config
k 2 account list -c
k 12 -c "" account list
k 12 --config= account list
k 12 -c "$BIG" account list
k 12 -c "$T_WORK/a" -c "$T_WORK/b" account list
k 2 -v
k 2 -v -v
k 2 --verbose
k 2 --verbose -v
k 2 ""
k 2 "$BIG"
k 2 --no-such-option
k 2 -Z
k 0 --help
k 0 --version
row "" "-c --config -v --verbose --version"
# kasa help [COMMAND [SUB]]: the command's own help; nothing else after it.
k 0 help
k 0 help help
k 0 help lab
k 0 help lab up
k 0 help roll
k 0 help log summary
k 2 help extra
k 2 help ""
k 2 help "$BIG"
k 2 help --no-such-option
k 2 help -Z
k 2 help lab bogus
k 2 help lab ""
k 2 help lab "$BIG"
k 2 help lab --dir
k 2 help lab up extra
k 2 help lab member start
k 2 help roll --members
k 2 help roll ""
for g in lab account spn array log; do
	k 2 "$g"
	k 2 "$g" ""
	k 2 "$g" "$BIG"
	k 2 "$g" --no-such-option
	k 0 "$g" --help
done

# lab up starts a realm (with --ad a Samba domain, as root), so it never runs bare: every
# row names the test's --dir and holds something wrong, and must stop before anything
# starts. up "WORDS" "VALUE-OPTIONS" "FLAGS": each option missing its value (last, and
# alone), empty, 10k, 10k then empty; each flag twice (with an operand too many).
up() {
	words=$1 vopts=$2 flags=$3
	row "$words" "$vopts $flags"
	set -f
	k 0 $words --help
	k 2 $words --dir "$LAB" extra
	k 2 $words --dir "$LAB" --no-such-option
	k 2 $words --dir "$LAB" -Z
	k 12 $words --dir "$LABDIR_BIG"
	for o in $vopts; do
		# Only a 10k directory gets past the parser, to fail creating it.
		case $o in
		-d | --dir) big=12 ;;
		*) big=2 ;;
		esac
		k 2 $words --dir "$LAB" "$o"
		k 2 $words "$o"
		k 2 $words --dir "$LAB" "$o" ""
		k "$big" $words --dir "$LAB" "$o" "$BIG"
		k 2 $words --dir "$LAB" "$o" "$BIG" "$o" ""
	done
	for f in $flags; do
		k 2 $words --dir "$LAB" "$f" "$f" extra
	done
	set +f
}
LABDIR_BIG="$T_WORK/$BIG"
up "lab up" "-d --dir -r --realm --members --replay" "--ad"
k 2 lab up --dir "$LAB" --realm PROSEWARE.LAB --realm ""
k 2 lab up --dir "$LAB" --members 101
k 2 lab up --dir "$LAB" --members -1
k 2 lab up --dir "$LAB" --members 4294967297
k 2 lab up --dir "$LAB" --members 1 --members x
k 2 lab up --dir "$LAB" --replay memcached
k 2 lab up --dir "$LAB" --replay REDIS
k 2 lab up --dir "$LAB" --replay redis --replay ""
k 2 lab up --dir "$LAB" --replay local --replay x
# --ad as the missing value of --dir must not pick the AD lab with ./--ad for its directory.
k 2 lab up --dir --ad
k 2 lab up --dir --realm PROSEWARE.LAB
k 2 lab up --dir --members 1
k 2 lab status --dir --json
k 2 lab up -d --ad --members 1
up "lab up --ad" "-d --dir --members --replay" "--ad"
k 2 lab up --ad --dir "$LAB" --realm PROSEWARE.LAB
k 2 lab up --ad --dir "$LAB" -r PROSEWARE.LAB
k 2 lab up --ad --dir "$LAB" --members 101
k 2 lab up --ad --dir "$LAB" --members -1
k 2 lab up --ad --dir "$LAB" --members 4294967297
k 2 lab up --ad --dir "$LAB" --members 1 --members x
k 2 lab up --ad --dir "$LAB" --replay memcached
k 2 lab up --ad --dir "$LAB" --replay redis --replay ""
k 2 lab up --ad --dir "$LAB" --replay local --replay x
k 2 lab up --ad --dir -x
k 2 lab up --ad --dir "$LAB" -- --ad
verb "lab down" 0 0 "" "" "--dir $LAB" "-d --dir" "" 0
verb "lab env" 1 0 "" "" "--dir $LAB" "-d --dir" ""
verb "lab status" 1 0 "" "" "--dir $LAB" "-d --dir" "--json"
verb "lab member stop" 2 1 cas1 "" "--dir $LAB" "-d --dir" ""
verb "lab member start" 2 1 cas1 "" "--dir $LAB" "-d --dir" ""
k 2 lab member
k 2 lab member --dir "$LAB"
k 2 lab member bogus cas1 --dir "$LAB"
k 2 lab member "" cas1 --dir "$LAB"
k 2 lab member "$BIG" cas1 --dir "$LAB"
k 2 lab member Start cas1 --dir "$LAB"

verb "account create" 2 1 'CASARRAY-ASA$' "" "--computer" "-d --description --dns-host-name" "--computer --user"
k 2 account create 'CASARRAY-ASA$' --computer --user
verb "account show" 2 1 'CASARRAY-ASA$' "" "" "" "--json"
verb "account list" 1 0 "" "" "" "" "--json"
verb "account delete" 2 1 'CASARRAY-ASA$' "" "" "" "--force -f"

verb "spn add" 2 2 http/$ARRAY 'CASARRAY-ASA$' "" "" ""
verb "spn delete" 2 2 http/$ARRAY 'CASARRAY-ASA$' "" "" ""
verb "spn list" 2 1 'CASARRAY-ASA$' "" "" "" "--json"
verb "spn query" 2 1 http/$ARRAY "" "" "" "--json"
verb "spn duplicates" 1 0 "" "" "" "" "--json"

verb "array create" 2 1 $ARRAY "" '--asa CASARRAY-ASA$' "-a --asa -s --short-name" ""
verb "array add-member" 2 2 $ARRAY cas1.proseware.lab:7460 "" "--address --http-port" ""
k 2 array add-member $ARRAY
k 2 array add-member
k 2 array add-member $ARRAY cas1.proseware.lab --http-port 0
k 2 array add-member $ARRAY cas1.proseware.lab --http-port 65536
k 2 array add-member $ARRAY cas1.proseware.lab --http-port 4294967297
verb "array remove-member" 2 2 $ARRAY cas1.proseware.lab "" "" ""
verb "array show" 1 1 $ARRAY "" "" "" "--json"
verb "array list" 1 0 "" "" "" "" "--json"
verb "array delete" 2 1 $ARRAY "" "" "" ""

verb "roll" 2 1 $ARRAY "" "" "-m --members -t --timeout --if-older-than" "--dry-run -n --force --resume -v --verbose"
k 2 roll $ARRAY --if-older-than 0
k 2 roll $ARRAY --if-older-than 1y
k 2 roll $ARRAY --members ,,,
k 2 roll $ARRAY --timeout 99
k 2 roll $ARRAY --timeout 4294967396
k 2 roll $ARRAY --resume --dry-run
verb "copy" 2 1 $ARRAY "" "--from cas1 --to cas2" "--from --to --timeout" "-v --verbose"
k 2 copy $ARRAY --from cas1
k 2 copy $ARRAY --to cas2
k 2 copy $ARRAY --from cas1 --to cas1
k 2 copy $ARRAY --from cas1 --to ,
verb "heal" 1 1 $ARRAY "" "" "-t --timeout" "-v"
k 2 heal $ARRAY --timeout 99
verb "status" 1 1 $ARRAY "" "" "--timeout" "--json --nagios"
k 2 status $ARRAY --json --nagios
k 2 status --nagios --json
k 2 status --nagios --timeout ""
k 2 status --nagios "$ARRAY" extra
k 3 status --nagios
verb "verify" 2 1 $ARRAY "" "" "--as --timeout" "--json"
verb "diagnose" 2 1 $ARRAY "" "" "-p --port --address --as --max-skew" "--json"
k 2 diagnose $ARRAY --port 0
k 2 diagnose $ARRAY --port 4294967297
k 2 diagnose $ARRAY --max-skew 0
k 2 diagnose $ARRAY --max-skew 4294967297

k 2 log
k 2 log ""
k 2 log "$BIG"
k 0 log --help
k 2 log bogus
verb "log summary" 2 1 "$NOFILE" "" "" "" "--json"
verb "inspect" 2 1 YA0GCSqGSIb3EgECAgEA "" "" "" "--json"

# The table against the CLI: every verb and sub-verb the help names (kasa --help, then
# kasa COMMAND --help), and every option its own --help names (in the usage lines and at
# the start of the option lines; not -h, --help), has a row. A sub-verb an option selects
# (lab up --ad) is a verb of its own when its help differs.
KASA_HELP="$T_WORK/help"
helpof() {
	set -f
	"$KASA" $1 --help >"$KASA_HELP" 2>/dev/null </dev/null
	set +f
}
# usage_verbs: the verb of each usage line of the help in $KASA_HELP, one a line ("stop|start"
# gives two), and after a tab the option right after the verb's words, if any.
usage_verbs() {
	awk '
	/^usage: / { u = 1; sub(/^usage:/, "") }
	u && /^$/ { exit }
	u && $1 == "kasa" {
		w = ""
		for (i = 2; i <= NF && $i ~ /^[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*$/; i++)
			w = w (w == "" ? "" : " ") $i
		if (w == "")
			next
		mode = i <= NF && $i ~ /^--?[a-z][a-z0-9-]*$/ ? $i : ""
		last = w
		sub(/.* /, "", last)
		head = substr(w, 1, length(w) - length(last))
		n = split(last, alt, "|")
		for (j = 1; j <= n; j++)
			print head alt[j] "\t" mode
	}' "$KASA_HELP"
}
# help_options: the options the help in $KASA_HELP names, one a line.
help_options() {
	awk '
	/^usage: / { u = 1 }
	u && /^$/ { u = 0 }
	u {
		line = " " $0
		while (match(line, /[^A-Za-z0-9-]--?[A-Za-z][A-Za-z0-9-]*/)) {
			print substr(line, RSTART + 1, RLENGTH - 1)
			line = substr(line, RSTART + RLENGTH)
		}
		next
	}
	/^ +-/ {
		for (i = 1; i <= NF; i++) {
			t = $i
			sub(/,$/, "", t)
			if (t !~ /^--?[A-Za-z]/)
				break
			n = split(t, alt, "|")
			for (j = 1; j <= n; j++)
				print alt[j]
		}
	}' "$KASA_HELP" | grep -v -x -e -h -e --help | sort -u
}
helpof ""
cmds=$(awk '/^commands:/ { c = 1; next } c && /^$/ { exit } c && /^  [a-z]/ { print $1 }' \
	"$KASA_HELP")
check "kasa --help names the commands" test -n "$cmds"
: >"$T_WORK/verbs"
for c in $cmds; do
	helpof "$c"
	usage_verbs >"$T_WORK/found"
	[ -s "$T_WORK/found" ] || not_ok "kasa $c --help: no usage line names a verb"
	while IFS="$(printf '\t')" read -r w mode; do
		printf '%s\n' "$w" >>"$T_WORK/verbs"
		[ -n "$mode" ] || continue
		helpof "$w"
		cp "$KASA_HELP" "$T_WORK/help.plain"
		helpof "$w $mode"
		cmp -s "$KASA_HELP" "$T_WORK/help.plain" || printf '%s %s\n' "$w" "$mode" >>"$T_WORK/verbs"
	done <"$T_WORK/found"
done
check "the help names lab up, lab up --ad, lab member start and log summary" \
	sh -c 'grep -qx "lab up" "$1" && grep -qx "lab up --ad" "$1" &&
		grep -qx "lab member start" "$1" && grep -qx "log summary" "$1"' sh "$T_WORK/verbs"
sort -u "$T_WORK/verbs" -o "$T_WORK/verbs"
echo >>"$T_WORK/verbs" # the global options: the row ""
while read -r w; do
	name="kasa${w:+ $w}"
	opts=$(awk -F '\t' -v w="$w" '$1 == w { print $2 }' "$T_WORK/rows")
	if [ -z "$opts" ]; then
		not_ok "$name: no row in the table"
		continue
	fi
	helpof "$w"
	missing=""
	for o in $(help_options); do
		case " $w $opts " in
		*" $o "*) ;;
		*) missing="$missing $o" ;;
		esac
	done
	if [ -z "$missing" ]; then
		ok "$name: its row covers every option its --help names"
	fi
	for o in $missing; do
		not_ok "$name: option $o is in its --help but not in its row"
	done
	# kasa help WORDS prints what kasa WORDS --help prints.
	case $w in
	"" | *" "*" "* | *" -"*) continue ;;
	esac
	cp "$KASA_HELP" "$T_WORK/help.plain"
	set -f
	"$KASA" help $w >"$KASA_HELP" 2>/dev/null </dev/null
	set +f
	check "kasa help $w prints kasa $w --help" cmp -s "$KASA_HELP" "$T_WORK/help.plain"
done <"$T_WORK/verbs"

# Nothing started, nothing written: no lab anywhere, nothing left in the working
# directory (no ./lab, no core file).
check "no lab was created" test ! -e "$LAB/lab.state"
found=$(find "$T_WORK" -name lab.state 2>/dev/null)
check "no lab state anywhere in the test's directory" test -z "$found"
for s in $found; do "$KASA" lab down --dir "$(dirname "$s")" >/dev/null 2>&1; done
check "nothing was written to the working directory" test -z "$(ls -A "$T_WORK/cwd")"
cd "$T_WORK" || exit 1
done_testing
