# Convenience entry points; the real build is CMake + Ninja.
#   make test   - sanitizer build (ASan + UBSan) of everything, then all tests
#   make run    - optimized build, then run the server on its embedded defaults
#   make bench  - optimized build of the benchmarks, then run them
#   make tsan   - ThreadSanitizer build (g++) of everything, then the unit and integration tests
#   make fuzz   - libFuzzer build (clang, ASan + UBSan), then every fuzz target FUZZ_SECONDS each
#   make fuzz-ci - the same, FUZZ_CI_SECONDS each, two at a time; fails on any finding
#   make thread-safety - clang build of everything with -Wthread-safety: lock annotations checked
#   make install - optimized build, then installs into PREFIX (default /usr/local; DESTDIR too):
#                  bin/presenced, bin/presencectl, share/presenced/, lib/systemd/system/presenced.service
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
TEST_DIR ?= build/asan
REL_DIR ?= build/release
TSAN_DIR ?= build/tsan
FUZZ_DIR ?= build/fuzz
TSA_DIR ?= build/thread-safety
FUZZ_SECONDS ?= 600
FUZZ_CI_SECONDS ?= 60
# Fuzz targets to run, without the fuzz_ prefix (e.g. "glob jwt"); empty: all of them.
FUZZ_TARGETS ?=
# gcc 12's TSan runtime needs a layout without ASLR on some kernels ("unexpected memory mapping").
SETARCH := $(shell setarch $$(uname -m) -R true >/dev/null 2>&1 && echo "setarch $$(uname -m) -R")

.PHONY: test run bench build release clean format tsan tsan-build fuzz fuzz-ci fuzz-build \
  thread-safety install

$(TEST_DIR)/build.ninja:
	cmake -S . -B $(TEST_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
	  -DPRESENCED_SANITIZE=ON

$(REL_DIR)/build.ninja:
	cmake -S . -B $(REL_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DPRESENCED_BENCH=ON -DPRESENCED_TESTS=OFF

build: $(TEST_DIR)/build.ninja
	cmake --build $(TEST_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(TEST_DIR) --output-on-failure -j $(JOBS)

release: $(REL_DIR)/build.ninja
	cmake --build $(REL_DIR) -j $(JOBS)

run: release
	exec $(REL_DIR)/src/server/presenced

# The prefix is set at configure time (the unit names the binary's full path).
install: $(REL_DIR)/build.ninja
	cmake -S . -B $(REL_DIR) -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(REL_DIR) -j $(JOBS) --target presenced presencectl
	DESTDIR=$(DESTDIR) cmake --install $(REL_DIR)

# ThreadSanitizer: the JS client's and the dashboard's browser tests are left out (they test
# JavaScript, not our threads). Reports go to files (a server's stderr is a pipe its test may not
# drain) and any report fails the target.
$(TSAN_DIR)/build.ninja:
	cmake -S . -B $(TSAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
	  -DCMAKE_CXX_COMPILER=g++ -DPRESENCED_TSAN=ON

tsan-build: $(TSAN_DIR)/build.ninja
	cmake --build $(TSAN_DIR) -j $(JOBS)

tsan: tsan-build
	rm -rf $(TSAN_DIR)/tsan-reports && mkdir -p $(TSAN_DIR)/tsan-reports
	@status=0; TSAN_OPTIONS="log_path=$(abspath $(TSAN_DIR))/tsan-reports/report \
	  second_deadlock_stack=1 $(TSAN_OPTIONS)" $(SETARCH) \
	  ctest --test-dir $(TSAN_DIR) --output-on-failure -j $(JOBS) \
	  -E '^(js_client|dashboard_browser|openapi_doc)$$' || status=$$?; \
	if ls $(TSAN_DIR)/tsan-reports/report* >/dev/null 2>&1; then \
	  cat $(TSAN_DIR)/tsan-reports/report*; \
	  echo "tsan: ThreadSanitizer reports above ($(TSAN_DIR)/tsan-reports)"; exit 1; fi; \
	if [ $$status -ne 0 ]; then exit $$status; fi; \
	echo "tsan: no ThreadSanitizer reports"

$(FUZZ_DIR)/build.ninja:
	cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
	  -DCMAKE_CXX_COMPILER=clang++-14 -DPRESENCED_FUZZ=ON -DPRESENCED_TESTS=OFF

fuzz-build: $(FUZZ_DIR)/build.ninja
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_all

fuzz: fuzz-build
	fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-ci: fuzz-build
	FUZZ_PARALLEL=$(JOBS) fuzz/run.sh $(FUZZ_DIR) $(FUZZ_CI_SECONDS) $(FUZZ_TARGETS)

$(TSA_DIR)/build.ninja:
	cmake -S . -B $(TSA_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0" \
	  -DCMAKE_CXX_COMPILER=clang++-14 -DPRESENCED_THREAD_SAFETY=ON -DPRESENCED_TESTS=OFF

thread-safety: $(TSA_DIR)/build.ninja
	cmake --build $(TSA_DIR) -j $(JOBS)

bench: release
	python3 bench/suite.py $(BENCH_ARGS)

# Soak test (not in CI): SOAK_MINUTES of churn against a copy of the ASan server, checked against a
# shadow model, RSS sampled each minute; writes build/soak/soak-TIME.json (tests/soak/README.md).
SOAK_MINUTES ?= 30
.PHONY: soak
soak: build
	/usr/bin/python3 tests/soak/soak.py --minutes $(SOAK_MINUTES) --build-dir $(TEST_DIR) $(SOAK_ARGS)

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf build
