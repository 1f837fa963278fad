.PHONY: demo test tools
## Runs every check CI runs (installs its tools into .venv first).
test:
	bash scripts/test.sh
## Installs the pinned test tools into .venv.
tools:
	bash scripts/tools.sh
## Runs the functions locally end to end against a local AWS and prints a report.
demo:
	bash scripts/demo.sh
