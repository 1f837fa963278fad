#!/usr/bin/env bash
# Every check CI runs: formatting, lints, the workspace tests (against a local AWS), the template
# checks and a smoke test of the real bootstrap. Installs its own tools into ./.venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/tools.sh
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0

step() { printf '\n== %s\n' "$*"; }
step "format";    cargo fmt --all -- --check
step "lint";      cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
step "tests";     cargo test --workspace --all-features --locked
step "template";  cfn-lint template.yaml && sam validate --lint --template template.yaml --region us-east-1
step "rule pattern"; python scripts/check_rule_pattern.py
step "smoke (the real bootstraps under cargo lambda)"; bash scripts/smoke.sh
step "demo (relay local demo)"; cargo run --quiet --locked -p relay-cli --features local -- local demo
step "soak (relay local soak, 300 events under faults)"; cargo run --quiet --locked -p relay-cli --features local -- local soak --events 300
step "rotation soak (relay local rotation-soak, 100 events while every credential rotates)"; cargo run --quiet --locked -p relay-cli --features local -- local rotation-soak --events 100 --rate 5
step "API contract (schemathesis against the local stack)"; API_CONTRACT_SEED=1 bash scripts/api_contract.sh
