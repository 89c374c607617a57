#!/usr/bin/env bash
# The GPU path, checked and measured in one run (docs/gpu.md): builds lumi against the torch of this machine's
# Python, runs every test labelled `cuda` (each against the CPU result), then times tiny's training step in
# bfloat16 at batch 32 x 1024 in lumi and in PyTorch (transformers' LlamaForCausalLM of the same shape, eager
# and torch.compile) and prints tokens/s and MFU. Without a GPU the same code runs on the CPU, at tiny's CPU
# benchmark shape (2 x 256) in float32, so CI keeps the script working.
#   scripts/gpu_check.sh --prepare          here: gather what a GPU machine without a package registry lacks
#                                           (Debian packages as .deb, SentencePiece) into .gpu/ to carry there
#   scripts/gpu_check.sh                    on the GPU machine (or anywhere): build, test, measure
# Options: --build DIR (reuse a configured build), --python PY (default python3), --no-compile, --steps N,
# --skip-tests (CI's CTest runs the cuda tests itself and this script only for the timing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

python=${PYTHON:-python3}
build=""
prepare=0
compile=1
steps=10
tests=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) prepare=1 ;;
    --build) build=$2; shift ;;
    --python) python=$2; shift ;;
    --no-compile) compile=0 ;;
    --steps) steps=$2; shift ;;
    --skip-tests) tests=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done

carry=$root/.gpu
# Headers and libraries lumi builds with that a CUDA image with PyTorch, CMake and ninja usually lacks.
debs=(libboost1.81-dev libboost-json1.81-dev libboost-json1.81.0 libboost-container1.81-dev
  libboost-container1.81.0 librange-v3-dev libcli11-dev libfmt-dev libgtest-dev libgmock-dev
  libbenchmark-dev libbenchmark1debian libutf8proc-dev libutf8proc2 libzstd-dev zlib1g-dev
  libprotobuf-dev libprotobuf-lite32 libprotobuf32 libgloo-dev)

if [ "$prepare" -eq 1 ]; then
  rm -rf "$carry" && mkdir -p "$carry/debs"
  (cd "$carry/debs" && apt-get download -qq "${debs[@]}")
  cp -a "${LUMI_SENTENCEPIECE_ROOT:-/opt/lumi/sentencepiece}" "$carry/sentencepiece"
  echo "gpu_check.sh: $(du -sh "$carry" | cut -f1) in $carry; carry .gpu and run scripts/gpu_check.sh there"
  exit 0
fi

# The carried packages, unpacked beside the tree and put on the compiler's and loader's paths.
if [ -d "$carry/debs" ]; then
  mkdir -p "$carry/root"
  for f in "$carry"/debs/*.deb; do dpkg -x "$f" "$carry/root"; done
  usr=$carry/root/usr
  export CMAKE_PREFIX_PATH="$usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export CPATH="$usr/include${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$usr/lib/x86_64-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LUMI_SENTENCEPIECE_ROOT=$carry/sentencepiece
fi

cuda=$("$python" -c "import torch; print(int(torch.cuda.is_available()))")
echo "=== gpu_check: $("$python" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device: checking the same code on the CPU')")"
start=$(date +%s)

if [ -z "$build" ]; then
  build=$root/build-gpu
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLUMI_TORCH_PYTHON="$(command -v "$python")" \
    -DLUMI_STAGE_PRESETS=tiny -DCMAKE_CUDA_ARCHITECTURES=90 >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log"; exit 1; }
fi
cmake --build "$build" --target lumi_cuda_tests lumi_train_bench -j "$(nproc)"
echo "=== gpu_check: built in $(( $(date +%s) - start )) s"
if [ "$tests" -eq 1 ]; then
  echo "=== gpu_check: the cuda tests"
  ctest --test-dir "$build" -L cuda --output-on-failure --timeout 300
fi

if [ "$cuda" -eq 1 ]; then
  filter='^train_step_cuda/tiny/'; shape=(--batch 32 --seq 1024 --device cuda --dtype bfloat16)
else
  filter='^train_step/tiny/(full|chunked)/float32/'; shape=(--batch 2 --seq 256 --device cpu --dtype float32)
fi
echo "=== gpu_check: timing tiny's training step (${shape[*]})"
out=$(mktemp -d)
OMP_WAIT_POLICY=passive "$build/benchmarks/lumi_train_bench" --benchmark_filter="$filter" \
  --benchmark_min_time=2 --benchmark_format=json >"$out/lumi.json"
peak=$("$python" -c "import json,sys; b=json.load(open(sys.argv[1]))['benchmarks']; print(b[0]['peak_flops']/1e12)" "$out/lumi.json")
modes=(eager)
[ "$compile" -eq 1 ] && modes+=(compile)
for mode in "${modes[@]}"; do
  OMP_WAIT_POLICY=passive "$python" scripts/gpu_bench.py --preset tiny --mode "$mode" "${shape[@]}" \
    --steps "$steps" --peak-tflops "$peak" >"$out/torch_$mode.json"
done
"$python" - "$out" "$peak" <<'PY'
import json, pathlib, sys
out, peak = pathlib.Path(sys.argv[1]), float(sys.argv[2])
rows = []
for b in json.loads((out / "lumi.json").read_text())["benchmarks"]:
    tps = b["items_per_second"]
    rows.append(("lumi " + b["name"].split("/")[2] + " loss", tps, tps * b["flops_per_token"] / (peak * 1e12)))
for f in sorted(out.glob("torch_*.json")):
    r = json.loads(f.read_text().strip().splitlines()[-1])
    rows.append(("PyTorch " + r["mode"] + " (transformers)", r["tokens_per_s"], r.get("mfu", float("nan"))))
print("peak %.4g TFLOP/s per device; model FLOPs per token as docs/performance.md counts them" % peak)
print("%-34s %14s %8s" % ("", "tokens/s", "MFU"))
for name, tps, mfu in rows:
    print("%-34s %14.0f %7.1f%%" % (name, tps, 100 * mfu))
PY
rm -rf "$out"
echo "=== gpu_check: done in $(( $(date +%s) - start )) s"
