#!/usr/bin/env bash
# Builds lumi's libFuzzer targets (fuzz/, one per parser of untrusted bytes) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs each for a bounded time from its seed corpus (fuzz/corpus/<target>/), as
# many at once as there are cores. Fails, printing the report, on any crash, sanitizer report, uncaught
# exception, timeout or out-of-memory; the input that caused it is kept in build-fuzz/artifacts/.
#   scripts/fuzz.sh                       every target, 30 s each
#   scripts/fuzz.sh 600 safetensors       one target for 10 minutes
#   scripts/fuzz.sh runs=10000            every target for 10000 inputs from seed 1: the same inputs on every
#                                         run, so a pass or a failure repeats (what scripts/test.sh runs)
# The targets build against PyPI's torch 2.x (scripts/setup.sh --torch2; LUMI_TORCH2_VENV to use another):
# Debian's LibTorch 1.13 headers do not compile with clang in C++20.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/parallel.sh

budget=${1:-30}
[ $# -gt 0 ] && shift
if [[ $budget =~ ^runs=[1-9][0-9]*$ ]]; then
  limit=(-runs="${budget#runs=}" -seed=1); seconds=600; what="${budget#runs=} inputs from seed 1"
elif [[ $budget =~ ^[1-9][0-9]*$ ]]; then
  limit=(-max_total_time="$budget"); seconds=$budget; what="$budget s"
else
  echo "fuzz.sh: '$budget' is neither seconds nor runs=N" >&2; exit 2
fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors packed_shard settings corpus_lines instructions hf_config trainer_state gguf spm_model preferences)
build=build-fuzz
clang=$(command -v clang++-14 || command -v clang++) || { echo "fuzz.sh: clang++ not found (scripts/setup.sh)" >&2; exit 1; }

start=$(date +%s)
# Without Parquet: Arrow's reader is fuzzed by its own project (OSS-Fuzz); these targets fuzz lumi's parsers.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -gline-tables-only" \
  -DCMAKE_CXX_COMPILER="$clang" "-DLUMI_TORCH2_VENV=${LUMI_TORCH2_VENV:-$root/.venv-torch2}" -DLUMI_FUZZ=ON \
  -DLUMI_PARQUET=OFF \
  -DLUMI_BUILD_TESTS=OFF -DLUMI_BUILD_EXAMPLES=OFF -DLUMI_BUILD_BENCHMARKS=OFF -DLUMI_INSTALL=OFF \
  >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/lumi_fuzz_}"
echo "=== fuzz: built in $(( $(date +%s) - start )) s; ${#targets[@]} targets, $what each"

# As in scripts/sanitize.sh, LibTorch needs nothing turned off; every finding is fatal.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export OMP_NUM_THREADS=1
mkdir -p "$build/artifacts" "$build/logs"
# The targets write each input to a file: on tmpfs when there is one, removed afterwards.
scratch=$([ -w /dev/shm ] && echo /dev/shm || echo "$root/$build")/lumi_fuzz_$$
trap 'rm -rf "$scratch"' EXIT
run() {
  local target=$1 corpus="$build/corpus/$1"
  mkdir -p "$corpus" "$scratch/$target"
  # A run that does not end (a hang outside any one input) is killed well after its time.
  if TMPDIR="$scratch/$target" timeout -s KILL $((seconds + 300)) "$build/fuzz/lumi_fuzz_$target" \
       "${limit[@]}" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
       -artifact_prefix="$build/artifacts/$target-" "$corpus" "fuzz/corpus/$target" \
       >"$build/logs/$target.log" 2>&1; then
    echo "fuzz $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$build/logs/$target.log" | tail -1)"
  else
    echo "=== fuzz $target FAILED (log $build/logs/$target.log):"
    grep -v '^#[0-9]' "$build/logs/$target.log" | tail -60
    return 1
  fi
}
each_in_parallel run "${targets[@]}" || { echo "=== fuzz: FAILED (reproduce: $build/fuzz/lumi_fuzz_<target> $build/artifacts/<file>)"; exit 1; }
echo "=== fuzz: every target ran clean, $(( $(date +%s) - start )) s in all"
