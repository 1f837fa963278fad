#!/usr/bin/env bash
# Fuzzes the parsers and inbound authentication (the cargo-fuzz crate in fuzz/): each target runs
# for FUZZ_SECONDS (default 30) from its seeds in fuzz/seeds/<target>, growing fuzz/corpus/<target>.
# Runs on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only flags.
# Installs cargo-fuzz if it is missing. Prints each target's executions and outcome, then
# `fuzz: N passed, M failed`, and exits non-zero if any target crashed; the failing input is kept
# under fuzz/artifacts/<target>/ and its path is printed.
#
# Usage: scripts/fuzz.sh [target...]        (default: every target in fuzz/fuzz_targets)
# Environment: FUZZ_SECONDS (per target, default 30), FUZZ_SANITIZER (default none: the code under
# test has no unsafe; set address for ASan), FUZZ_MAX_LEN (default 8192 bytes).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-none}"
max_len="${FUZZ_MAX_LEN:-8192}"
logs="$root/fuzz/target/fuzz-logs"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked || { echo "fuzz: cannot install cargo-fuzz"; exit 1; }
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
  echo "fuzz: no targets"
  exit 1
fi

echo "fuzz: building ${#targets[@]} targets (sanitizer: $sanitizer)"
build_start=$SECONDS
only=()
[ "${#targets[@]}" -eq 1 ] && only=("${targets[0]}")  # one target: build just it; else all
if ! cargo fuzz build --sanitizer "$sanitizer" "${only[@]}"; then
  echo "fuzz: build failed"
  echo "fuzz: 0 passed, ${#targets[@]} failed"
  exit 1
fi
echo "fuzz: built in $(( SECONDS - build_start ))s"
mkdir -p "$logs"

passed=0
failed=0
for target in "${targets[@]}"; do
  corpus="corpus/$target"
  seeds="seeds/$target"
  log="$logs/$target.log"
  mkdir -p "$corpus" "$seeds"
  echo "fuzz: $target: running ${seconds}s (log: $log)"
  # New inputs go to the first directory (the generated corpus); the seeds are only read.
  cargo fuzz run --sanitizer "$sanitizer" "$target" "$corpus" "$seeds" -- \
    -max_total_time="$seconds" -timeout=10 -max_len="$max_len" -print_final_stats=1 \
    >"$log" 2>&1
  rc=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n1 | grep -o '[0-9]*$')"
  if [ -z "$execs" ]; then
    execs="$(grep -oE '^#[0-9]+' "$log" | tail -n1 | tr -d '#')"
  fi
  execs="${execs:-0}"
  artifact="$(grep -oE '(Test unit|artifact) written to [^ ]+' "$log" | tail -n1 | awk '{print $NF}')"
  corpus_size="$(find "$corpus" -type f | wc -l)"
  if [ "$rc" -eq 0 ] && [ -z "$artifact" ]; then
    passed=$((passed + 1))
    echo "fuzz: $target: ok, $execs executions, no crash (corpus: $corpus_size inputs)"
  else
    failed=$((failed + 1))
    echo "fuzz: $target: CRASH (exit $rc) after $execs executions"
    grep -m1 -A4 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | sed 's/^/    /'
    if [ -n "$artifact" ]; then
      case "$artifact" in /*) ;; *) artifact="$root/fuzz/$artifact" ;; esac
      echo "    input: $artifact"
      echo "    input (hex, first 512 bytes): $(head -c 512 "$artifact" | od -An -v -tx1 | tr -d ' \n')"
      echo "    reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer $target $artifact  (in fuzz/)"
    else
      tail -n 20 "$log" | sed 's/^/    /'
    fi
  fi
done

echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
