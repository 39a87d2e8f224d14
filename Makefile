# The two commands of the README. Everything else is a helper for them.
PRESET ?= release
BUILD_DIR := build/$(PRESET)
JOBS ?= $(shell nproc)
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= ./data

# ccache needs a home for its cache; give it one inside the tree when the environment has none.
ifeq ($(HOME),)
export CCACHE_DIR := $(CURDIR)/build/ccache
endif

.PHONY: deps build run test test-asan test-tsan test-fuzz bench clean

deps:
	@./scripts/install-deps.sh

build: deps
	cmake --preset $(PRESET) >/dev/null
	cmake --build --preset $(PRESET) -j $(JOBS)

# Installs what is missing, builds slotd alone (no test binaries) and runs it with demo data.
# slotd prints the patient page's URL (http://$(HOST):$(PORT)/), the admin page's, and the
# file that holds the admin token (the token itself is never printed).
run: deps
	cmake --preset $(PRESET) >/dev/null
	cmake --build --preset $(PRESET) -j $(JOBS) --target slotd
	$(BUILD_DIR)/api/slotd --demo --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

# Installs, builds and runs every test: release first, then all of them again under
# AddressSanitizer + UBSan and under ThreadSanitizer (slotd itself too, for the API tests),
# then each libFuzzer target briefly (clang; tests/fuzz/README.md).
test: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)
	ctest --preset release -j $(JOBS)
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory test-tsan
	$(MAKE) --no-print-directory test-fuzz

test-asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

test-tsan: deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan -j $(JOBS)
	ctest --preset tsan -j $(JOBS)  # the preset sets TSAN_OPTIONS (tests/tsan.supp)

# The fuzz targets on their seed corpus, then fuzzing for SLOTD_FUZZ_SECONDS (20) each.
test-fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)
	ctest --preset fuzz -j $(JOBS)

# Engine, journal and HTTP micro-benches, then bench/run (slotd vs hello_server, the
# contention check, the Node/PostgreSQL baseline, the live feed); BENCH_ARGS=--quick etc.
bench: build
	@./scripts/install-deps.sh wrk curl
	./bench/run.sh $(BUILD_DIR)
	./bench/run $(BENCH_ARGS)

clean:
	rm -rf build
