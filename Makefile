# Thin wrapper over CMake. `make` builds Release into build/, `make test` runs ctest there,
# `make asan` builds and tests the sanitizer build in build-asan/, `make fuzz` builds the
# libFuzzer targets in build-fuzz/, `make test-arm64` cross-builds for aarch64 in build-arm64/ and
# runs it under qemu-user (scripts/test-arm64.sh). `./bitnet.sh` installs what is missing first.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build test asan fuzz run bench-kernels test-arm64 clean

all: build

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	cmake --build build -j $(JOBS)

test: build
	cd build && ctest --output-on-failure -j $(JOBS)

asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBITNET_SANITIZE=ON -DBITNET_CUDA=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

fuzz:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBITNET_FUZZ=ON -DBITNET_CUDA=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build build-fuzz -j $(JOBS)

# The x86 build (build/) first: its `bitnet eval` output is what the arm64 one must equal.
test-arm64: build
	JOBS=$(JOBS) bash scripts/test-arm64.sh

run: build
	./build/bin/bitnet run

bench-kernels: build
	./build/bin/bench_kernels

clean:
	rm -rf build build-asan build-fuzz build-arm64
