#!/usr/bin/env bash
# Installs the pinned test tools (moto server, cfn-lint, SAM CLI, cargo-lambda) into ./.venv.
# Idempotent: reinstalls only when requirements-dev.txt changes. Source it or run it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
source "$root/scripts/venv.sh"
pinned_venv "$venv" "$root/requirements-dev.txt"
export PATH="$venv/bin:$PATH"
export MOTO_SERVER="$venv/bin/moto_server"
