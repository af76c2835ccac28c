# Shared by the end-to-end tests: a throwaway lab realm per test file, TAP output, and
# assertions that run real commands. Source it; then call lab_up, the checks, and done.
#
# Every test stops what it started, even when it fails: the EXIT trap stops the lab.
set -u

: "${KASA:?KASA must point to the kasa binary (meson test sets it)}"
T_NUM=0
T_FAILED=0
T_OUT=""
T_ERR=""
T_STATUS=0
T_WORK=$(mktemp -d "${TMPDIR:-/tmp}/kasa-e2e.XXXXXX")
LAB="$T_WORK/lab"

cleanup() {
	"$KASA" lab down --dir "$LAB" >/dev/null 2>&1 || true
	rm -rf "$T_WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() {
	T_NUM=$((T_NUM + 1))
	printf 'ok %s - %s\n' "$T_NUM" "$1"
}

not_ok() {
	T_NUM=$((T_NUM + 1))
	T_FAILED=$((T_FAILED + 1))
	printf 'not ok %s - %s\n' "$T_NUM" "$1"
	shift
	for line in "$@"; do
		printf '%s\n' "$line" | sed 's/^/# /'
	done
}

# run CMD...: run it, keeping its status, stdout and stderr for the checks after it.
run() {
	"$@" >"$T_WORK/out" 2>"$T_WORK/err"
	T_STATUS=$?
	T_OUT=$(cat "$T_WORK/out")
	T_ERR=$(cat "$T_WORK/err")
}

# expect STATUS DESCRIPTION CMD...: the command exits with STATUS.
expect() {
	want=$1
	desc=$2
	shift 2
	run "$@"
	if [ "$T_STATUS" -eq "$want" ]; then
		ok "$desc"
	else
		not_ok "$desc" "command: $*" "exit $T_STATUS, expected $want" "stdout: $T_OUT" "stderr: $T_ERR"
	fi
}

# out_has / err_has TEXT DESCRIPTION: the last command's stdout / stderr holds TEXT.
out_has() {
	case "$T_OUT" in
	*"$1"*) ok "$2" ;;
	*) not_ok "$2" "stdout lacks: $1" "stdout: $T_OUT" ;;
	esac
}

err_has() {
	case "$T_ERR" in
	*"$1"*) ok "$2" ;;
	*) not_ok "$2" "stderr lacks: $1" "stderr: $T_ERR" ;;
	esac
}

# err_one_line DESCRIPTION: the last command's error is exactly one line starting "kasa: ".
err_one_line() {
	lines=$(printf '%s\n' "$T_ERR" | wc -l)
	case "$T_ERR" in
	"kasa: "*) [ "$lines" -eq 1 ] && ok "$1" || not_ok "$1" "stderr has $lines lines: $T_ERR" ;;
	*) not_ok "$1" "stderr: $T_ERR" ;;
	esac
}

# check DESCRIPTION CMD...: a shell condition holds.
check() {
	desc=$1
	shift
	if "$@"; then
		ok "$desc"
	else
		not_ok "$desc" "condition failed: $*"
	fi
}

# eventually CMD...: CMD succeeds within 5 s (for logs a server writes after it answered).
eventually() {
	for _ in $(seq 50); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# json FIELD.PATH: read a value from the last command's stdout, which is JSON.
json() {
	printf '%s' "$T_OUT" | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print("null" if v is None else v)' "$1"
}

# lab_up [ARGS]: start the test's lab and point this shell at it; bail out if it fails.
lab_up() {
	if ! "$KASA" lab up --dir "$LAB" "$@" >"$T_WORK/lab-up.out" 2>&1; then
		echo "Bail out! kasa lab up failed: $(cat "$T_WORK/lab-up.out")"
		exit 1
	fi
	eval "$("$KASA" lab env --dir "$LAB")"
}

# kadmin.local QUERY: MIT's own view of the lab's database (not kasa's).
# array_up N ASA ARRAY SPN...: a lab with N members, the computer account ASA owning the
# SPNs, and the array ARRAY of every member; member I FIELD then reads member I's FIELD
# (port, address, managed_keytab, ...) from the lab.
array_up() {
	_n=$1 _asa=$2 _array=$3
	shift 3
	lab_up --members "$_n"
	"$KASA" lab status --dir "$LAB" --json >"$T_WORK/lab.json"
	if ! "$KASA" account create "$_asa" --computer >/dev/null ||
		! "$KASA" array create "$_array" --asa "$_asa" >/dev/null; then
		echo "Bail out! cannot make the ASA and the array"
		exit 1
	fi
	for _spn in "$@"; do "$KASA" spn add "$_spn" "$_asa" >/dev/null 2>&1; done
	for _i in $(seq "$_n"); do
		"$KASA" array add-member "$_array" "cas$_i.proseware.lab:$(member "$_i" port)" \
			--address "$(member "$_i" address)" >/dev/null
	done
}
member() {
	python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["members"][int(sys.argv[2])-1]; print(m[sys.argv[3]])' "$T_WORK/lab.json" "$1" "$2"
}

kadmin_local() {
	kadmin.local -r "${REALM:-PROSEWARE.LAB}" -q "$1" 2>/dev/null
}

# principals: every principal in the lab, one a line, from kadmin.local.
principals() {
	kadmin_local listprincs | grep '@' | sort
}

done_testing() {
	echo "1..$T_NUM"
	[ "$T_FAILED" -eq 0 ]
}

# gssapi_python: set PY to a python3 that has the gssapi module (python3-gssapi, which
# scripts/install-deps installs for the system's python3; a python3 earlier in PATH, such
# as pyenv's, may lack it); bail out when there is none.
gssapi_python() {
	PY=
	for p in python3 /usr/bin/python3; do
		if "$p" -c 'import gssapi' 2>/dev/null; then
			PY=$p
			return 0
		fi
	done
	echo "Bail out! no python3 with the gssapi module (python3-gssapi; see scripts/install-deps)"
	exit 1
}
