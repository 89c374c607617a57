#!/usr/bin/env bash
# Installs everything lumi needs from Debian 12's packages. Idempotent: packages already present are skipped.
#   scripts/setup.sh            Debian LibTorch 1.13 (CPU), the other libraries and the serving tests' clients
#   scripts/setup.sh --torch2   also a Python virtual environment (.venv-torch2) with PyPI's torch 2.x
set -euo pipefail

want_torch2=0
for arg in "$@"; do
  case "$arg" in
    --torch2) want_torch2=1 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (expected --torch2)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

packages=(
  build-essential cmake ninja-build ccache pkg-config git python3 python3-venv
  libtorch-dev libopenblas0-pthread libgloo-dev
  libboost1.81-dev libboost-json1.81-dev
  sentencepiece protobuf-compiler libprotobuf-dev
  librange-v3-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev python3-torch
  zlib1g-dev libzstd-dev libutf8proc-dev libgoogle-perftools-dev
  jargon-text fortunes debian-reference-en wordnet-base
  clang-14 libclang-rt-14-dev  # libFuzzer and its sanitizers, for scripts/fuzz.sh
  chromium chromium-driver     # the serving tests open lumi_serve's chat page in a real browser
)

if [ ! -r /etc/debian_version ] || ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup.sh: this is not a Debian system; install these (Debian 12 names) by hand:" >&2
  printf '  %s\n' "${packages[@]}" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all ${#packages[@]} Debian packages already installed"
else
  echo "setup.sh: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# SentencePiece from Debian's own source package, built against Debian's protobuf. Debian's binary
# libsentencepiece carries a private protobuf 3.14 that exports its symbols and clashes with the protobuf 3.21
# that Debian's LibTorch loads: a process linking both aborts at start-up. Same version (0.1.97), same sources.
spm_prefix=${LUMI_SENTENCEPIECE_ROOT:-/opt/lumi/sentencepiece}
if [ -f "$spm_prefix/lib/libsentencepiece.a" ] && [ -f "$spm_prefix/include/sentencepiece_processor.h" ]; then
  echo "setup.sh: SentencePiece already built in $spm_prefix"
else
  echo "setup.sh: building SentencePiece 0.1.97 from Debian's source package into $spm_prefix (about a minute)"
  if ! apt-get source --print-uris sentencepiece >/dev/null 2>&1; then
    echo "setup.sh: enabling Debian's source packages (deb-src) in /etc/apt/sources.list.d/lumi-deb-src.sources"
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] && grep -q '^Types: deb$' "$f" && sed 's/^Types: deb$/Types: deb-src/' "$f"
      echo
    done | $sudo tee /etc/apt/sources.list.d/lumi-deb-src.sources >/dev/null
    if [ ! -s /etc/apt/sources.list.d/lumi-deb-src.sources ] || ! grep -q deb-src /etc/apt/sources.list.d/lumi-deb-src.sources; then
      sed -n 's/^deb /deb-src /p' /etc/apt/sources.list 2>/dev/null | $sudo tee /etc/apt/sources.list.d/lumi-deb-src.list >/dev/null
    fi
    $sudo apt-get update -qq
  fi
  work=$(mktemp -d)
  chmod 755 "$work"  # apt-get source downloads as the _apt user
  (
    cd "$work"
    apt-get source --download-only -qq sentencepiece >/dev/null
    tar xzf sentencepiece_*.orig.tar.gz
    cmake -S sentencepiece-* -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPM_USE_BUILTIN_PROTOBUF=OFF \
      -DSPM_ENABLE_SHARED=OFF -DSPM_ENABLE_TCMALLOC=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
      -DCMAKE_INSTALL_PREFIX="$spm_prefix" >build.log 2>&1 || { cat build.log; exit 1; }
    cmake --build build -j "$(nproc)" >>build.log 2>&1 || { tail -50 build.log; exit 1; }
    $sudo cmake --install build >>build.log 2>&1 || { tail -50 build.log; exit 1; }
  )
  rm -rf "$work"
fi

# The serving tests' clients (OpenAI's Python package, Selenium): a small environment of their own.
"$root/scripts/setup_clients.sh"

if [ "$want_torch2" -eq 1 ]; then
  "$root/scripts/setup_torch2.sh"
fi
