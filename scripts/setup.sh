#!/usr/bin/env bash
# Installs everything lumi needs from Debian 12's packages. Idempotent: packages already present are skipped.
#   scripts/setup.sh            Debian LibTorch 1.13 (CPU) and the other libraries
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

packages=(
  build-essential cmake ninja-build ccache pkg-config git python3 python3-venv
  libtorch-dev libopenblas0-pthread
  libboost1.81-dev libboost-json1.81-dev
  libsentencepiece-dev sentencepiece
  librange-v3-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  zlib1g-dev libzstd-dev
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
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$want_torch2" -eq 1 ]; then
  "$root/scripts/setup_torch2.sh"
fi
