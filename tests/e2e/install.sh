#!/bin/sh
# make install as an administrator types it. A build directory set up by make (prefix
# /usr/local), then make install PREFIX=$T_WORK/prefix: everything lands there, kasa, kasad
# and kasa-httpd run from it with no LD_LIBRARY_PATH, the man pages and the completion are
# there, and libkasa.pc builds a program against the installed tree. Then PREFIX=/usr
# DESTDIR=$T_WORK/dest stages a /usr tree with no rpath. A missing -dev package stops
# make install with one line. Nothing outside $T_WORK changes, and no package is
# installed: apt-get and apt are stand-ins that only leave a mark.
#
# The build directory is the test's own (reconfiguring the prefix of the one meson test
# runs from would relink programs other tests are running); a debug build without the
# end-to-end helpers keeps it to seconds.
. "$(dirname "$0")/lib.sh"

: "${KASA_PROJECT_VERSION:?meson test sets it to the version in meson.build}"
src=$(cd "$(dirname "$0")/../.." && pwd)
build="$T_WORK/build"
prefix="$T_WORK/prefix"
dest="$T_WORK/dest"
# An outer make (make check) must not hand its variables to ours.
unset MAKEFLAGS MFLAGS MAKELEVEL DESTDIR PREFIX BUILD MESON_OPTS

mkdir "$T_WORK/bin"
for tool in apt-get apt; do
	printf '#!/bin/sh\necho "$0 $*" >>"%s/apt-called"\nexit 1\n' "$T_WORK" >"$T_WORK/bin/$tool"
	chmod +x "$T_WORK/bin/$tool"
done
PATH="$T_WORK/bin:$PATH"
export PATH

packages() { dpkg-query -W 2>/dev/null | wc -l; }
packages_before=$(packages)
touch "$T_WORK/stamp"
sleep 1 # find -newer compares whole seconds on some file systems

expect 0 "make setup BUILD=DIR sets up a build directory (prefix /usr/local)" \
	make -C "$src" setup BUILD="$build" MESON_OPTS="-De2e=false --buildtype=debug"
expect 0 "ninja builds it" ninja -C "$build"

expect 0 "make install PREFIX=$prefix, in a build directory set up for /usr/local" \
	make -C "$src" install BUILD="$build" PREFIX="$prefix" DESTDIR=
for f in bin/kasa sbin/kasad sbin/kasa-httpd include/kasa/kasa.h include/kasa/kasa_err.h \
	share/man/man1/kasa.1 share/man/man5/kasa.conf.5 share/man/man8/kasad.8 \
	share/man/man8/kasa-httpd.8 share/bash-completion/completions/kasa; do
	check "$f is installed under the prefix" [ -f "$prefix/$f" ]
done
libkasa=$(find "$prefix" -name libkasa.so.0)
pc=$(find "$prefix" -name libkasa.pc)
check "libkasa.so.0 is installed under the prefix" [ -n "$libkasa" ]
check "libkasa.pc is installed under the prefix" [ -n "$pc" ]
libdir=$(dirname "$libkasa")

# Each program runs from the prefix and loads the prefix's libkasa, through its rpath.
for p in bin/kasa sbin/kasad sbin/kasa-httpd; do
	name=$(basename "$p")
	expect 0 "$name --version runs from the prefix with no LD_LIBRARY_PATH" \
		env -u LD_LIBRARY_PATH "$prefix/$p" --version
	check "... and prints '$name $KASA_PROJECT_VERSION'" [ "$T_OUT" = "$name $KASA_PROJECT_VERSION" ]
	run env -u LD_LIBRARY_PATH ldd "$prefix/$p"
	out_has "libkasa.so.0 => $libdir/libkasa.so.0" "... with the prefix's libkasa"
done
expect 0 "man finds kasad(8) under the prefix" man -M "$prefix/share/man" -w 8 kasad
expect 0 "the installed completion registers for kasa" \
	bash -c '. "$1" && complete -p kasa' bash "$prefix/share/bash-completion/completions/kasa"

# A program against the installed tree, with what libkasa.pc says.
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
expect 0 "pkg-config --cflags --libs libkasa" pkg-config --cflags --libs libkasa
flags=$T_OUT
out_has "-I$prefix/include" "... names the prefix's headers"
out_has "-L$libdir" "... and the prefix's libdir"
cat >"$T_WORK/prog.c" <<'EOF'
#include <kasa/kasa.h>
#include <stdio.h>
int main(void) { kasa_ctx *ctx = NULL; if (kasa_ctx_new(&ctx) != 0) return 1;
	printf("%s\n", kasa_version()); kasa_ctx_free(ctx); return 0; }
EOF
# shellcheck disable=SC2086
expect 0 "a program including <kasa/kasa.h> compiles and links with those flags" \
	cc -Wall -Werror -o "$T_WORK/prog" "$T_WORK/prog.c" $flags -Wl,-rpath,"$libdir"
expect 0 "... and runs" env -u LD_LIBRARY_PATH "$T_WORK/prog"
check "... printing libkasa's version" [ "$T_OUT" = "$KASA_PROJECT_VERSION" ]
unset PKG_CONFIG_PATH

# Packaging: a /usr tree staged under DESTDIR, without an rpath (distributions forbid it).
expect 0 "make install PREFIX=/usr DESTDIR=$dest" \
	make -C "$src" install BUILD="$build" PREFIX=/usr DESTDIR="$dest"
for f in usr/bin/kasa usr/sbin/kasad usr/sbin/kasa-httpd usr/include/kasa/kasa.h \
	usr/share/man/man8/kasa-httpd.8 usr/share/bash-completion/completions/kasa; do
	check "$f is staged under DESTDIR" [ -f "$dest/$f" ]
done
dpc=$(find "$dest" -name libkasa.pc)
check "libkasa.pc is staged, for prefix /usr" grep -qx 'prefix=/usr' "$dpc"
run readelf -d "$dest/usr/bin/kasa"
check "the staged kasa has no rpath" [ -z "$(grep -E 'RPATH|RUNPATH' "$T_WORK/out")" ]
check "nothing else is under DESTDIR" [ "$(ls "$dest")" = usr ]

# Building is needed (a new prefix reconfigures) and a -dev package is missing: one line.
cat >"$T_WORK/bin/dpkg-query" <<'EOF'
#!/bin/sh
for a; do p=$a; done
[ "$p" = libkrb5-dev ] || printf 'install ok installed'
EOF
chmod +x "$T_WORK/bin/dpkg-query"
expect 2 "make install with libkrb5-dev missing fails" \
	make -s -C "$src" install BUILD="$build" PREFIX="$T_WORK/other" DESTDIR=
check "... saying so in one line of its own (then make's)" \
	[ "$(printf '%s\n' "$T_ERR" | grep -vc '^make: \*\*\*')" -eq 1 ]
err_has "kasa: building needs the Debian packages libkrb5-dev;" "... which names libkrb5-dev"
check "... having installed nothing" [ ! -e "$T_WORK/other" ]
rm "$T_WORK/bin/dpkg-query"

# Nothing outside $T_WORK.
check "apt-get and apt were never called" [ ! -e "$T_WORK/apt-called" ]
check "no package was installed or removed" [ "$(packages)" = "$packages_before" ]
# none DESCRIPTION: the last command printed nothing.
none() {
	if [ -z "$T_OUT" ]; then ok "$1"; else not_ok "$1" "$T_OUT"; fi
}
run find /usr/local /etc -newer "$T_WORK/stamp"
none "nothing in /usr/local or /etc changed"
run find /usr /opt -newer "$T_WORK/stamp" -name '*kasa*'
none "nothing named kasa appeared under /usr or /opt"

done_testing
