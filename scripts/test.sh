#!/usr/bin/env bash
# Every check CI runs: formatting, lints, the workspace tests (against a local AWS), the template
# checks, smoke tests of the real bootstraps (under cargo lambda, and as sam build made them under
# the Lambda Runtime Interface Emulator), the demo and the soaks. Installs its own tools into ./.venv.
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
step "checkov";   bash scripts/checkov.sh
step "rule pattern"; python scripts/check_rule_pattern.py
step "local resources"; python scripts/check_local_resources.py
step "smoke (the real bootstraps under cargo lambda)"; bash scripts/smoke.sh
step "sam build (x86_64: the artifacts sam deploy would ship, built for this machine)"; sam build --parameter-overrides Architecture=x86_64
step "sam local invoke, without a container (the built bootstraps under the Lambda Runtime Interface Emulator)"; SMOKE_RUNTIME=emulator bash scripts/smoke.sh
step "demo (relay local demo)"; cargo run --quiet --locked -p relay-cli --features local -- local demo
step "demo on FIFO queues (relay local demo --queue-type fifo)"; cargo run --quiet --locked -p relay-cli --features local -- local demo --queue-type fifo
step "soak (relay local soak, 300 events under faults)"; cargo run --quiet --locked -p relay-cli --features local -- local soak --events 300
step "soak on FIFO queues (relay local soak --queue-type fifo, 300 events under faults)"; cargo run --quiet --locked -p relay-cli --features local -- local soak --events 300 --queue-type fifo
step "rotation soak (relay local rotation-soak, 100 events while every credential rotates)"; cargo run --quiet --locked -p relay-cli --features local -- local rotation-soak --events 100 --rate 5
step "API contract (schemathesis against the local stack)"; API_CONTRACT_SEED=1 bash scripts/api_contract.sh
