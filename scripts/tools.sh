#!/usr/bin/env bash
# Installs the pinned test tools (moto server, cfn-lint, SAM CLI, cargo-lambda) into ./.venv.
# Idempotent: reinstalls only when requirements-dev.txt changes. Source it or run it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$root/requirements-dev.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "tools: creating $venv"
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "tools: installing pinned tools from requirements-dev.txt (first run takes a few minutes)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/requirements-dev.txt"
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
export MOTO_SERVER="$venv/bin/moto_server"
