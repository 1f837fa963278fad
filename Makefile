.PHONY: demo soak rotation-soak test tools
## Runs every check CI runs (installs its tools into .venv first).
test:
	bash scripts/test.sh
## Installs the pinned test tools into .venv.
tools:
	bash scripts/tools.sh
## Runs the whole pipeline locally (local AWS, Twilio, Genesys), plays a scenario, prints a report.
demo:
	bash scripts/tools.sh
	cargo run --quiet -p relay-cli --features local -- local demo
## Sends 5,000 events through the local stack under injected faults and checks every outcome.
soak:
	bash scripts/tools.sh
	cargo run --quiet -p relay-cli --features local -- local soak
## Sends events through the local stack while every kind of credential rotates, and checks none
## was refused or lost.
rotation-soak:
	bash scripts/tools.sh
	cargo run --quiet -p relay-cli --features local -- local rotation-soak
