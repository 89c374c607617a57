#!/usr/bin/env bash
# A new user's first command: set-up, build and the whole pipeline (nano preset, Debian-package corpus) into
# runs/nano, ending with runs/nano/report.md. Arguments after the options go to lumi_pipeline_nano.
#   scripts/pipeline.sh                      Debian's LibTorch 1.13 (fastest set-up)
#   scripts/pipeline.sh --torch2             PyPI's torch 2.x in .venv-torch2 (faster training, 4.7 GB set-up)
#   scripts/pipeline.sh -- --from pretrain   pass options to the pipeline (here: re-run from pretraining)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

line=debian
if [ "${1:-}" = --torch2 ]; then line=torch2; shift; fi
if [ "${1:-}" = -- ]; then shift; fi

setup_flags=()
build=build-pipeline
flags=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DLUMI_STAGE_PRESETS=nano)
if [ "$line" = torch2 ]; then
  setup_flags+=(--torch2)
  build=build-pipeline-torch2
  flags+=("-DLUMI_TORCH2_VENV=${LUMI_TORCH2_VENV:-$root/.venv-torch2}")
fi
scripts/setup.sh "${setup_flags[@]}"
cmake -S . -B "$build" "${flags[@]}" >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" --target lumi_pipeline_nano -j "$(nproc)"
exec "$build/examples/lumi_pipeline_nano" "$@"
