.PHONY: demo test tools
## Runs every check CI runs (installs its tools into .venv first).
test:
	bash scripts/test.sh
## Installs the pinned test tools into .venv.
tools:
	bash scripts/tools.sh
## Runs the whole pipeline locally (local AWS, Twilio, Genesys), plays a scenario, prints a report.
demo:
	bash scripts/tools.sh
	cargo run --quiet -p relay-cli -- local demo
