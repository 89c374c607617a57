#!/usr/bin/env bash
# Creates .venv-torch2: PyPI's torch 2.x (the LibTorch the field builds against) plus the Python libraries the
# interop tests compare lumi with. Idempotent: an environment with the pinned versions is kept.
# Note: PyPI's Linux torch wheel is the CUDA build; with its CUDA libraries it downloads several GB.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${LUMI_TORCH2_VENV:-$root/.venv-torch2}
torch_version=${LUMI_TORCH2_VERSION:-2.11.0}
python=${PYTHON:-python3}

if [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$torch_version" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
sys.exit(0 if md.version("torch") == sys.argv[1] else 1)
PY
then
  echo "setup_torch2.sh: $venv already has torch $torch_version"
else
  echo "setup_torch2.sh: creating $venv with torch $torch_version from PyPI (several GB with its CUDA libraries)"
  start=$(date +%s)
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "torch==$torch_version" numpy
  echo "setup_torch2.sh: torch installed in $(( $(date +%s) - start )) s"
fi
# The interop tests' peers. transformers 4.57 is the last line whose slow LlamaTokenizer runs SentencePiece
# itself (5.x re-implements it and skips its normaliser); PEFT 0.17 is the release made for it.
interop=(transformers==4.57.6 peft==0.17.1 safetensors==0.6.2 sentencepiece==0.2.1 protobuf==5.29.5)
if ! "$venv/bin/python" - "${interop[@]}" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
sys.exit(0 if all(md.version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
PY
then
  echo "setup_torch2.sh: installing ${interop[*]}"
  start=$(date +%s)
  "$venv/bin/pip" install -q "${interop[@]}"
  echo "setup_torch2.sh: interop libraries installed in $(( $(date +%s) - start )) s"
fi
# DPO's peer: TRL 0.28, the last line whose DPOTrainer has cDPO's label-smoothed sigmoid loss (1.x dropped it),
# with the datasets and accelerate it needs; installed beside the pins above so pip keeps transformers 4.57.
dpo_peers=(trl==0.28.0 datasets==5.0.1 accelerate==1.16.0)
if ! "$venv/bin/python" - "${dpo_peers[@]}" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
sys.exit(0 if all(md.version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
PY
then
  echo "setup_torch2.sh: installing ${dpo_peers[*]}"
  start=$(date +%s)
  "$venv/bin/pip" install -q "${dpo_peers[@]}" "${interop[@]}"
  echo "setup_torch2.sh: DPO peers installed in $(( $(date +%s) - start )) s"
fi
# Parquet: pyarrow ships Apache Arrow's C++ headers and libraries, which lumi's Parquet sources build against
# (cmake/lumiDependencies.cmake finds them through this environment's Python); its tests write Parquet with it.
parquet_peers=(pyarrow==26.0.1)
if ! "$venv/bin/python" - "${parquet_peers[@]}" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
sys.exit(0 if all(md.version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
PY
then
  echo "setup_torch2.sh: installing ${parquet_peers[*]}"
  "$venv/bin/pip" install -q "${parquet_peers[@]}"
fi
# GGUF's peers: the gguf package (llama.cpp's own reader) and llama-cpp-python, which compiles llama.cpp
# (about 4 minutes on two cores; the built wheel stays in the environment). Built for the baseline x86-64
# instruction set, so an environment moved to another CPU still runs.
gguf_peers=(gguf==0.19.0 llama-cpp-python==0.3.16)
if ! "$venv/bin/python" - "${gguf_peers[@]}" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
sys.exit(0 if all(md.version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
PY
then
  echo "setup_torch2.sh: installing ${gguf_peers[*]} (llama-cpp-python builds llama.cpp)"
  start=$(date +%s)
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$venv/bin/pip" install -q "${gguf_peers[@]}"
  echo "setup_torch2.sh: GGUF peers installed in $(( $(date +%s) - start )) s"
fi
echo "setup_torch2.sh: configure lumi with -DLUMI_TORCH2_VENV=$venv"
