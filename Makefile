# A thin wrapper over Meson + Ninja: the targets an administrator or CI types.
BUILD ?= build
PREFIX ?= /usr/local
DEPS = scripts/install-deps
MESON_OPTS ?=

.PHONY: all deps setup check test demo install format format-check asan clang bench clean

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

install: all
	meson install -C $(BUILD)
	-ldconfig

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
asan: deps
	@[ -f build-asan/build.ninja ] || meson setup build-asan --buildtype=debug \
		-Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build-asan
	@scripts/run-tests build-asan

# A clang build with warnings as errors (gcc is the default compiler).
clang: deps
	@[ -f build-clang/build.ninja ] || CC=clang meson setup build-clang --buildtype=debugoptimized
	ninja -C build-clang

clean:
	rm -rf $(BUILD) build-asan build-clang
