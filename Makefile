# Thin wrapper around CMake: `make` builds, `make test` builds and runs the tests.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all test test-asan bench clean
all:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: all
	@bash tests/run.sh $(BUILD)

test-asan:
	@$(MAKE) --no-print-directory test BUILD=build-asan CMAKE_FLAGS="-DBEIT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

bench: all
	@bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-asan
