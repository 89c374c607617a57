#!/usr/bin/env bash
# Creates the clients' environment (.venv-clients, or $LUMI_CLIENTS_VENV): the real clients the serving tests
# drive lumi_serve with, OpenAI's own Python package and Selenium (which drives Debian's chromium). Small and
# torch-free, so Debian's line has it too. Idempotent: an environment with the pinned versions is kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${LUMI_CLIENTS_VENV:-$root/.venv-clients}
python=${PYTHON:-python3}
clients=(openai==3.60.0 selenium==4.51.0)
if [ -x "$venv/bin/python" ] && "$venv/bin/python" - "${clients[@]}" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
sys.exit(0 if all(md.version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
PY
then
  echo "setup_clients.sh: $venv already has ${clients[*]}"
else
  echo "setup_clients.sh: creating $venv with ${clients[*]}"
  start=$(date +%s)
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "${clients[@]}"
  echo "setup_clients.sh: installed in $(( $(date +%s) - start )) s"
fi
