#!/bin/sh
# Every kasa verb and sub-verb with bad arguments: none at all, an option missing its
# value, empty strings, a 10,000-character argument, repeated options and operands,
# unknown options. Each must end with exit 2 (usage) or 1 with a one-line "kasa: " error,
# never a signal or a sanitizer report, and change nothing: kasa.conf names a directory
# that cannot be reached, and the lab verbs get a --dir that holds no lab.
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
# arguments are valid (lab down with no lab: nothing to stop).
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
		withops "${zero}12" "$op1" "$op2" "$f" "$f"
	done
	set +f
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
k 2 ""
k 2 "$BIG"
k 2 --no-such-option
k 2 -Z
k 0 --help
k 0 --version
k 0 help
for g in lab account spn array; do
	k 2 "$g"
	k 2 "$g" ""
	k 2 "$g" "$BIG"
	k 2 "$g" --no-such-option
	k 0 "$g" --help
done

# lab up starts a realm, so it gets its own rows, each with a --dir it may use: every one
# must stop before anything starts.
LABDIR_BIG="$T_WORK/$BIG"
k 2 lab up -d
k 2 lab up --dir
k 2 lab up --dir ""
k 12 lab up --dir "$LABDIR_BIG"
k 12 lab up --dir "$BIG"
k 2 lab up --dir "$LAB" extra
k 2 lab up --dir "$LAB" --no-such-option
k 2 lab up --dir "$LAB" -r
k 2 lab up --dir "$LAB" --realm
k 2 lab up --dir "$LAB" --realm ""
k 2 lab up --dir "$LAB" --realm "$BIG"
k 2 lab up --dir "$LAB" --realm PROSEWARE.LAB --realm ""
k 2 lab up --dir "$LAB" --members
k 2 lab up --dir "$LAB" --members ""
k 2 lab up --dir "$LAB" --members "$BIG"
k 2 lab up --dir "$LAB" --members 101
k 2 lab up --dir "$LAB" --members -1
k 2 lab up --dir "$LAB" --members 4294967297
k 2 lab up --dir "$LAB" --members 1 --members x
k 0 lab up --help
verb "lab down" 0 0 "" "" "--dir $LAB" "-d --dir" "" 0
verb "lab env" 1 0 "" "" "--dir $LAB" "-d --dir" ""
verb "lab status" 1 0 "" "" "--dir $LAB" "-d --dir" "--json"
verb "lab member" 2 2 stop cas1 "--dir $LAB" "-d --dir" ""
k 2 lab member bogus cas1 --dir "$LAB"

verb "account create" 2 1 'CASARRAY-ASA$' "" "--computer" "-d --description" "--computer --user"
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

verb "roll" 2 1 $ARRAY "" "" "-m --members -t --timeout --if-older-than" "--dry-run -n --force --resume -v"
k 2 roll $ARRAY --if-older-than 0
k 2 roll $ARRAY --if-older-than 1y
k 2 roll $ARRAY --members ,,,
k 2 roll $ARRAY --timeout 99
k 2 roll $ARRAY --timeout 4294967396
k 2 roll $ARRAY --resume --dry-run
verb "copy" 2 1 $ARRAY "" "--from cas1 --to cas2" "--from --to --timeout" "-v"
k 2 copy $ARRAY --from cas1
k 2 copy $ARRAY --to cas2
k 2 copy $ARRAY --from cas1 --to cas1
k 2 copy $ARRAY --from cas1 --to ,
verb "heal" 1 1 $ARRAY "" "" "-t --timeout" "-v"
k 2 heal $ARRAY --timeout 99
verb "status" 1 1 $ARRAY "" "" "--timeout" "--json"
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
verb "log summary" 2 1 "$NOFILE" "" "" "" "--json"
verb "inspect" 2 1 YA0GCSqGSIb3EgECAgEA "" "" "" "--json"

# Nothing started, nothing written: no lab anywhere, nothing left in the working
# directory (no ./lab, no core file).
check "no lab was created" test ! -e "$LAB/lab.state"
found=$(find "$T_WORK" -name lab.state 2>/dev/null)
check "no lab state anywhere in the test's directory" test -z "$found"
for s in $found; do "$KASA" lab down --dir "$(dirname "$s")" >/dev/null 2>&1; done
check "nothing was written to the working directory" test -z "$(ls -A "$T_WORK/cwd")"
cd "$T_WORK" || exit 1
done_testing
