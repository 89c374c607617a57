#!/usr/bin/env bash
# The unit tests built with AddressSanitizer and UndefinedBehaviorSanitizer (-DLUMI_SANITIZE=ON) against Debian's
# LibTorch 1.13, and run: any report fails the test that caused it. LibTorch is not instrumented; the options
# below say what that needs.
#   scripts/sanitize.sh                   the unit-test binaries listed below
#   scripts/sanitize.sh lumi_core_tests   some of them
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/parallel.sh

binaries=("$@")
# The suites of lumi's own byte handling: files, settings, safetensors and checkpoints, corpus and packing,
# training and resume. (The model's numerics run inside LibTorch, the tokenizer's inside SentencePiece, neither
# instrumented: leaving them out halves the build.)
[ ${#binaries[@]} -eq 0 ] && binaries=(lumi_core_tests lumi_config_tests lumi_io_tests lumi_corpus_tests
  lumi_packing_tests lumi_train_tests)
build=build-sanitize

start=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -g1" -DLUMI_SANITIZE=ON \
  -DLUMI_BUILD_EXAMPLES=OFF -DLUMI_BUILD_BENCHMARKS=OFF -DLUMI_INSTALL=OFF \
  >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target "${binaries[@]}"
echo "=== sanitize: built in $(( $(date +%s) - start )) s"

# LibTorch (not instrumented) needs nothing turned off: its never-freed static state stays reachable, so leak
# detection reports only lumi's leaks, and no report comes from inside it (docs/reliability.md). The stricter
# checks are on: use of a stack frame after return, initialisation order across translation units, whole
# strings for the string functions. -fno-sanitize-recover makes each UBSan finding fatal; print its stack.
export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1"
start=$(date +%s)
# Each binary runs whole, in one process (LibTorch's start-up under ASan costs seconds, once per binary rather
# than once per test as under CTest), as many at once as there are cores.
mkdir -p "$build/logs"
run() {
  local binary=$1 path
  path=$(find "$build/tests" -name "$binary" -type f -perm -u+x | head -1)
  if "$path" --gtest_brief=1 >"$build/logs/$binary.log" 2>&1; then
    echo "sanitize $binary: $(grep -o '[0-9]* tests\? from [0-9]* test suites\? ran. ([0-9]* ms total)' "$build/logs/$binary.log")"
  else
    echo "=== sanitize $binary FAILED (log $build/logs/$binary.log):"
    tail -80 "$build/logs/$binary.log"
    return 1
  fi
}
each_in_parallel run "${binaries[@]}" || { echo "=== sanitize: FAILED"; exit 1; }
echo "=== sanitize: tests passed in $(( $(date +%s) - start )) s"
