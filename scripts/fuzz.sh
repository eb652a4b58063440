#!/usr/bin/env bash
# Runs every fuzz target for a bounded time with the committed corpus
# (fuzz/corpus/TARGET), on nightly (the product itself builds on stable).
# A crash fails the run; its input is left in fuzz/artifacts/TARGET to be
# committed as a regression input once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-30}"
targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build
for t in $targets; do
  mkdir -p "fuzz/corpus/$t"
  echo "fuzzing $t for ${secs}s"
  log="fuzz/target/$t.log"
  mkdir -p fuzz/target
  status=0
  cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::new_units_added|SUMMARY)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz target $t crashed; the input is in fuzz/artifacts/$t" >&2
    exit 1
  fi
done
echo "fuzzing: ${targets//$'\n'/ } ran ${secs}s each, 0 crashes"
