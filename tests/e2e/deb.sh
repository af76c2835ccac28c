#!/bin/sh
# The Debian packages (issue 13): make deb's packages built from this tree, installed with
# dpkg on this machine, checked (programs, user, /etc/kasa samples, units installed but
# neither enabled nor started) and purged (only keytabs left): scripts/deb-check. Needs
# root and a machine with no kasa package installed; it leaves none behind, even when it
# fails.
. "$(dirname "$0")/lib.sh"

SRC="$(cd "$(dirname "$0")/../.." && pwd)"
if [ "$(id -u)" != 0 ] || ! command -v dpkg-buildpackage >/dev/null 2>&1; then
	echo "1..0 # SKIP needs root and dpkg-buildpackage (debhelper)"
	exit 0
fi
for p in kasa kasad kasa-httpd kasa-common libkasa0 libkasa-dev; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
		echo "1..0 # SKIP $p is installed on this machine; the test installs and purges its own"
		exit 0
	fi
done
purge_all() {
	dpkg --purge kasa-httpd kasad kasa libkasa-dev libkasa0 kasa-common >/dev/null 2>&1
	rm -rf /var/lib/kasa
	cleanup
}
trap purge_all EXIT

expect 0 "make deb's script builds the packages" "$SRC/scripts/deb" "$T_WORK/debs"
for p in kasa kasad kasa-httpd kasa-common libkasa0 libkasa-dev; do
	check "$p's package was built" sh -c "ls '$T_WORK/debs/${p}_'*.deb >/dev/null"
done
check "lintian reports nothing but the mail host debian/README.lintian explains" \
	sh -c "! grep -E '^[EW]: ' '$T_WORK/debs/lintian.log' | grep -v 'bogus-mail-host'"
# deb-check's own TAP, renumbered into this file's.
"$SRC/scripts/deb-check" "$T_WORK/debs" >"$T_WORK/deb-check.out" 2>&1
while IFS= read -r line; do
	case $line in
	"ok "*) ok "deb-check: ${line#* - }" ;;
	"not ok "*) not_ok "deb-check: ${line#* - }" ;;
	esac
done <"$T_WORK/deb-check.out"
check "deb-check ran all its checks" grep -q '^1\.\.19$' "$T_WORK/deb-check.out"
done_testing
