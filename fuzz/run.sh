#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] [TARGET...]
#
# Seeds the corpora (seed.sh), builds the fuzz targets, then runs each TARGET (all
# three by default) for SECONDS (default 900) one after another: one libFuzzer job
# with one worker (-jobs=1 -workers=1), so never more than one core is fuzzing.
# Each target's libFuzzer output is kept in fuzz/logs/<target>.log and its final
# statistics are printed at the end. Exits non-zero if any target found a crash
# (the input is in fuzz/artifacts/<target>/).
#
# Environment: FUZZ_TOOLCHAIN (default nightly), FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-900}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse_charge fingerprint fit_message)
toolchain=${FUZZ_TOOLCHAIN:-nightly}

./seed.sh
cargo "+$toolchain" fuzz build
mkdir -p logs

# One line per target: what libFuzzer printed last.
summary=()
failed=0
for target in "${targets[@]}"; do
  case $target in
    fit_message) flags=(-max_len=512) ;;
    *) flags=(-max_len=8192 -dict=json.dict) ;;
  esac
  echo "== $target: ${seconds}s"
  # In -jobs mode libFuzzer writes the job's output to fuzz-<job>.log.
  rm -f fuzz-0.log
  status=0
  # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
  cargo "+$toolchain" fuzz run "$target" "corpus/$target" -- \
    "${flags[@]}" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -jobs=1 -workers=1 ${FUZZ_ARGS:-} || status=$?
  log=logs/$target.log
  mv fuzz-0.log "$log"
  # `#N DONE cov: C ft: F corp: U/S lim: L exec/s: E rss: R` (the last status line).
  last=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -n 1 || true)
  runs=$(grep -oE 'stat::number_of_executed_units:[[:space:]]+[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
  rate=$(grep -oE 'stat::average_exec_per_sec:[[:space:]]+[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
  took=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE '[0-9]+ second' || true)
  crash=$(grep -oE 'Test unit written to [^ ]+' "$log" | head -n 1 || true)
  if [ "$status" -ne 0 ] || [ -n "$crash" ]; then
    failed=1
    summary+=("$target: FAILED (exit $status) ${crash:-see $log} | ${last//$'\t'/ }")
  else
    summary+=("$target: ${took:-? second}s, ${runs:-?} runs, ${rate:-?} exec/s | ${last//$'\t'/ }")
  fi
done

echo
echo "== fuzz/run.sh $seconds: $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%s\n' "${summary[@]}"
exit "$failed"
