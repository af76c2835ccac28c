# A thin wrapper over Meson + Ninja: the targets an administrator or CI types.
BUILD ?= build
PREFIX ?= /usr/local
DEPS = scripts/install-deps
MESON_OPTS ?=

.PHONY: all deps setup check test demo bench soak install format format-check asan clang fuzz fuzz-build clean deb deb-check

all: deps setup
	ninja -C $(BUILD)

deps:
	@./$(DEPS)

setup:
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) --prefix=$(PREFIX) --buildtype=debugoptimized $(MESON_OPTS)

# Every test, unit and end to end; the last line is the plain summary.
check: all
	@scripts/run-tests $(BUILD)

test: check

demo: all
	@scripts/demo $(BUILD)

# kasa-httpd against Apache + mod_auth_gssapi; writes doc/BENCHMARKS.md.
bench: all
	@scripts/bench $(BUILD)

# kasa alone, into PREFIX (a build/ set up for another prefix is reconfigured) under
# DESTDIR; no package is installed, and building, if needed, stops on a missing -dev one.
install:
	@MESON_OPTS='$(MESON_OPTS)' scripts/install $(BUILD) $(PREFIX) "$(DESTDIR)"

# The Debian packages (into build-deb/), and their install, run and purge on this machine
# (deb-check installs packages: not part of make check).
deb: deps
	@scripts/deb build-deb

deb-check: deb
	@scripts/deb-check build-deb

format:
	clang-format -i $$(git ls-files --cached --others --exclude-standard '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files --cached --others --exclude-standard '*.c' '*.h')

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
asan: deps
	@[ -f build-asan/build.ninja ] || meson setup build-asan --buildtype=debug \
		-Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fno-sanitize-recover=all
	ninja -C build-asan
	@LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 scripts/run-tests build-asan

# A clang build with warnings as errors (gcc is the default compiler).
clang: deps
	@[ -f build-clang/build.ninja ] || CC=clang meson setup build-clang --buildtype=debugoptimized
	ninja -C build-clang

# Each libFuzzer harness for FUZZ_SECONDS, under ASan+UBSan, from its corpus, with
# libkasa instrumented too (-Dfuzz=true, see lib/meson.build). Prints each harness's
# coverage and fails below the floors in tests/fuzz/floors.
FUZZ_SECONDS ?= 30
FUZZ_BUILD ?= build-fuzz
fuzz: fuzz-build
	@tests/fuzz/run $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-build: deps
	@[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang meson setup $(FUZZ_BUILD) --buildtype=debug \
		-Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fno-sanitize-recover=all \
		-Dfuzz=true -De2e=false
	ninja -C $(FUZZ_BUILD)

# The fault suite's long form (20 rolls under load with faults, kasad's keeper killed
# KEEPER_KILLS=1000 times) and each fuzz harness for SOAK_FUZZ_RUNS=10^7 executions;
# writes doc/RELIABILITY.md. SOAK_STEPS="faults keeper" leaves the fuzzers out.
soak: all fuzz-build
	@scripts/soak $(BUILD) $(FUZZ_BUILD)

clean:
	rm -rf $(BUILD) build-asan build-clang $(FUZZ_BUILD)
