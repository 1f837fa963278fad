#!/usr/bin/env bash
# Runs checkov (pinned in requirements-checkov.txt) on template.yaml and fails on any failed check.
# Exceptions are skipped inline, each with its reason, under the resource's Metadata.checkov.skip.
# checkov conflicts with the tools in ./.venv on shared dependencies, so it gets its own
# ./.venv/checkov, reinstalled only when requirements-checkov.txt changes. Offline: no update
# check, no platform download.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/venv.sh"
pinned_venv "$root/.venv/checkov" "$root/requirements-checkov.txt"
venv="$root/.venv/checkov"

# checkov evaluates Conditions at the parameters' defaults and leaves out the resources whose
# condition is false (e.g. EventDeadLetterQueue, created with QueueType fifo only); a copy without
# the resources' (and outputs') Condition lines checks those too.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed '/^    Condition: /d' "$root/template.yaml" > "$tmp/template.unconditional.yaml"

cd "$root"
if ! out="$(CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE CKV_PARSE_ERROR_FAIL=true \
  "$venv/bin/checkov" --framework cloudformation --skip-download --compact --quiet \
  --file template.yaml --file "$tmp/template.unconditional.yaml" 2>&1)"; then
  printf '%s\n' "$out"
  exit 1
fi
printf 'checkov: %s\n' "$(printf '%s\n' "$out" | grep -m1 '^Passed checks:')"
