# Thin wrapper around CMake: `make` builds, `make test` builds and runs the tests.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all test test-asan fuzz-build fuzz-replay bench clean
all:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: all
	@bash tests/run.sh $(BUILD)

# The suite under ASan + UBSan (any report fails the program that made it). Full
# unwinding lets tests/lsan.supp recognise Open MPI's own leaks under mpirun.
ASAN_ENV = ASAN_OPTIONS=fast_unwind_on_malloc=0 UBSAN_OPTIONS=print_stacktrace=1 \
           LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
test-asan:
	@$(ASAN_ENV) $(MAKE) --no-print-directory test BUILD=build-asan CMAKE_FLAGS="-DBEIT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

# libFuzzer harnesses (clang, ASan + UBSan) in build-fuzz; docs/fuzzing.md.
fuzz-build:
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DBEIT_FUZZ=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-fuzz --target fuzzers -j $(JOBS) -- --no-print-directory

# Every harness over its corpus in fuzz/corpus (regression, seconds).
fuzz-replay: fuzz-build
	@bash scripts/fuzz.sh replay

bench: all
	@bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
