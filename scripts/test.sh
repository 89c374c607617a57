#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: set-up, build, every test, against both LibTorch lines
# (Debian's 1.13 and PyPI's torch 2.x), then the unit tests under AddressSanitizer and UndefinedBehaviorSanitizer
# (scripts/sanitize.sh, Debian's line) and every fuzz target for the same 10,000 inputs on every run (scripts/fuzz.sh,
# clang against torch 2.x; LUMI_FUZZ_BUDGET=60 fuzzes 60 s each instead). Fails on the first failure.
#   scripts/test.sh              both lines, sanitizers and fuzzers
#   scripts/test.sh --debian     Debian's LibTorch 1.13 and the sanitizer build only (fastest set-up)
#   scripts/test.sh --torch2     PyPI's torch 2.x and the fuzzers only
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

lines=(debian torch2)
case "${1:-}" in
  "") ;;
  --debian) lines=(debian) ;;
  --torch2) lines=(torch2) ;;
  *) echo "test.sh: unknown option '$1' (expected --debian or --torch2)" >&2; exit 2 ;;
esac

setup_flags=()
[[ " ${lines[*]} " == *" torch2 "* ]] && setup_flags+=(--torch2)
scripts/setup.sh "${setup_flags[@]}"

jobs=$(nproc)
for line in "${lines[@]}"; do
  build="build-ci-$line"
  flags=(-G Ninja -DCMAKE_BUILD_TYPE=Release)
  # To keep CI within an hour on two cores, each line builds what only it can test. Both: every unit test of
  # the library. Debian's: the example and stage executables (nano; the tiny ones are the same template with
  # another constant) with their end-to-end, bad-input and pipeline tests, and the package tests. torch 2.x's:
  # the interop tests with transformers and PEFT, the GPU path's tests (on the CPU here), the benchmarks and
  # their smoke runs (peer_bench.py compares them with torch.compile there).
  ctest_flags=()
  if [ "$line" = torch2 ]; then
    flags+=("-DLUMI_TORCH2_VENV=${LUMI_TORCH2_VENV:-$root/.venv-torch2}" -DLUMI_BUILD_EXAMPLES=OFF)
    ctest_flags+=(-LE package)
  else
    flags+=(-DLUMI_BUILD_BENCHMARKS=OFF -DLUMI_STAGE_PRESETS=nano)
  fi
  echo "=== LibTorch line '$line': configure and build ($build)"
  start=$(date +%s)
  cmake -S . -B "$build" "${flags[@]}" >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
  cmake --build "$build" -j "$jobs"
  echo "=== LibTorch line '$line': built in $(( $(date +%s) - start )) s; running the tests"
  start=$(date +%s)
  ctest --test-dir "$build" -j "$jobs" --output-on-failure --timeout 900 "${ctest_flags[@]}"
  echo "=== LibTorch line '$line': tests passed in $(( $(date +%s) - start )) s"
done

# docs/reliability.md: the sanitizer build on Debian's line, the fuzzers on torch 2.x's (clang cannot compile
# Debian's LibTorch 1.13 headers in C++20).
if [[ " ${lines[*]} " == *" debian "* ]]; then
  echo "=== sanitizers: the unit tests under ASan and UBSan (build-sanitize)"
  start=$(date +%s)
  scripts/sanitize.sh
  echo "=== sanitizers: passed in $(( $(date +%s) - start )) s"
fi
if [[ " ${lines[*]} " == *" torch2 "* ]]; then
  echo "=== fuzz: every target, ${LUMI_FUZZ_BUDGET:-runs=10000} (build-fuzz)"
  start=$(date +%s)
  scripts/fuzz.sh "${LUMI_FUZZ_BUDGET:-runs=10000}"
  echo "=== fuzz: passed in $(( $(date +%s) - start )) s"
fi
