#!/bin/sh
# The systemd units in packaging/systemd, checked with systemd-analyze verify, which exits
# 0 even when it prints "Failed to parse ..." (Debian 12): any line it prints fails the
# check. The units name /usr/bin/kasa, /usr/sbin/kasad, /usr/sbin/kasa-httpd and their man
# pages; the check runs them against this build's programs and man pages. A unit with a
# bad line is caught too (the check can fail).
. "$(dirname "$0")/lib.sh"

UNITS="$(cd "$(dirname "$0")/../../packaging/systemd" && pwd)"
DOC="$(cd "$(dirname "$0")/../../doc" && pwd)"
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "1..0 # SKIP systemd-analyze is not installed"
	exit 0
fi
mkdir -p "$T_WORK/man/man1" "$T_WORK/man/man8" "$T_WORK/units"
cp "$DOC/kasa.1" "$T_WORK/man/man1/"
cp "$DOC/kasad.8" "$DOC/kasa-httpd.8" "$T_WORK/man/man8/"
for f in "$UNITS"/*; do
	sed "s|/usr/bin/kasa |$KASA |g; s|/usr/sbin/kasad |$KASAD |g; s|/usr/sbin/kasa-httpd |$KASA_HTTPD |g" \
		"$f" >"$T_WORK/units/${f##*/}"
done

# verify FILE...: systemd-analyze verify printed nothing and exited 0.
verify() {
	MANPATH="$T_WORK/man" SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$@" >"$T_WORK/verify.out" 2>&1 &&
		! [ -s "$T_WORK/verify.out" ] || { sed 's/^/# /' "$T_WORK/verify.out"; return 1; }
}
check "kasa-roll@.service verifies clean for an instance" \
	verify "$T_WORK/units/kasa-roll@outlook.proseware.lab.service"
check "kasa-roll@.timer verifies clean for an instance" \
	verify "$T_WORK/units/kasa-roll@outlook.proseware.lab.timer"
for u in kasad kasa-httpd; do
	check "$u.service verifies clean" verify "$T_WORK/units/$u.service"
	check "$u.service is Type=notify, as the kasa user, not before kasa.conf exists" sh -c "
		grep -qx 'Type=notify' '$UNITS/$u.service' && grep -qx 'User=kasa' '$UNITS/$u.service' &&
		grep -qx 'ConditionPathExists=/etc/kasa/kasa.conf' '$UNITS/$u.service'"
done
check "kasad keeps no capability at all" grep -qx 'CapabilityBoundingSet=' "$UNITS/kasad.service"
check "kasa-httpd keeps only the one to bind ports below 1024" \
	grep -qx 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' "$UNITS/kasa-httpd.service"
check "the timer is daily, randomized and persistent" sh -c "
	grep -qx 'OnCalendar=daily' '$UNITS/kasa-roll@.timer' &&
	grep -q '^RandomizedDelaySec=' '$UNITS/kasa-roll@.timer' &&
	grep -qx 'Persistent=true' '$UNITS/kasa-roll@.timer'"
check "the service rolls when 30 days old, then heals" sh -c "
	grep -qx 'ExecStart=-/usr/bin/kasa roll %i --if-older-than 30d' '$UNITS/kasa-roll@.service' &&
	grep -qx 'ExecStart=/usr/bin/kasa heal %i' '$UNITS/kasa-roll@.service'"

printf '[Service]\nType=notatype\nExecStart=/bin/true\n' >"$T_WORK/units/bad.service"
if verify "$T_WORK/units/bad.service" >/dev/null; then
	not_ok "the check fails a unit with a bad line (systemd-analyze said it and exited 0)"
else
	ok "the check fails a unit with a bad line (systemd-analyze said it and exited 0)"
fi
done_testing
