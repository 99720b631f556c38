# Convenience entry points; the real build is CMake + Ninja.
#   make test   - sanitizer build (ASan + UBSan) of everything, then all tests
#   make run    - optimized build, then run the server on its embedded defaults
#   make bench  - optimized build of the benchmarks, then run them
JOBS ?= $(shell nproc)
TEST_DIR ?= build/asan
REL_DIR ?= build/release

.PHONY: test run bench build release clean format

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

bench: release
	python3 bench/suite.py $(BENCH_ARGS)

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf build
