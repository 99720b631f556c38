#!/usr/bin/env bash
# Runs libFuzzer targets built by `make fuzz-build` (fuzz/README.md).
#
#   fuzz/run.sh BUILD_DIR SECONDS [TARGET...]     e.g. fuzz/run.sh build/fuzz 60 glob jwt
#
# Each target (default: all) runs SECONDS from its committed seeds (fuzz/corpus/TARGET, read only)
# plus the inputs it found in earlier runs (BUILD_DIR/fuzz/corpus/TARGET, where new ones go), with
# its dictionary (fuzz/dict/TARGET.dict) and options (fuzz/options/TARGET.options) when present.
# Exits non-zero when any target crashed, leaked, timed out, ran out of memory or failed an
# invariant; the input that did it is in BUILD_DIR/fuzz/artifacts/TARGET/.
#
# Environment: FUZZ_PARALLEL (targets at once, default 1), FUZZ_TIMEOUT (seconds one input may
# take, default 10), FUZZ_RSS_MB (memory limit, default 2048).
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
seconds=$2
shift 2
src=$(cd "$(dirname "$0")" && pwd)
parallel=${FUZZ_PARALLEL:-1}
timeout=${FUZZ_TIMEOUT:-10}
rss=${FUZZ_RSS_MB:-2048}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for bin in "$build"/fuzz/fuzz_*; do
    [ -x "$bin" ] && targets+=("$(basename "$bin" | sed 's/^fuzz_//')")
  done
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no targets in $build/fuzz (run make fuzz-build)" >&2
  exit 2
fi

symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
[ -z "$symbolizer" ] && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ] &&
  symbolizer=/usr/lib/llvm-14/bin/llvm-symbolizer
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1${symbolizer:+:external_symbolizer_path=$symbolizer}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"

run_one() {
  local t=$1 bin="$build/fuzz/fuzz_$1"
  local work="$build/fuzz/corpus/$t" artifacts="$build/fuzz/artifacts/$t/" log="$build/fuzz/logs/$t.log"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  local args=(-max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss"
              -print_final_stats=1 -artifact_prefix="$artifacts")
  [ -f "$src/dict/$t.dict" ] && args+=(-dict="$src/dict/$t.dict")
  [ -f "$src/options/$t.options" ] && read -r -a extra < "$src/options/$t.options" && args+=("${extra[@]}")
  local seeds=()
  [ -d "$src/corpus/$t" ] && seeds=("$src/corpus/$t")
  if [ ! -x "$bin" ]; then
    echo "fuzz_$t: not built" > "$log"
    return 1
  fi
  "$bin" "${args[@]}" "$work" "${seeds[@]}" > "$log" 2>&1
}

# Prints one line per finished target: time, executions, coverage, corpus, verdict.
summarize() {
  local t=$1 rc=$2 log="$build/fuzz/logs/$1.log"
  local execs cov corpus
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  corpus=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1 | awk '{print $2}')
  if [ "$rc" -eq 0 ]; then
    printf 'fuzz_%-14s ok      %5ss  %10s execs  cov %-6s corpus %s\n' "$t" "$seconds" \
      "${execs:-?}" "${cov:-?}" "${corpus:-?}"
  else
    printf 'fuzz_%-14s FAILED  (exit %s) after %s execs; log %s\n' "$t" "$rc" "${execs:-?}" "$log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*invariant failed|.*runtime error|artifact_prefix|Test unit written|.*ERROR: libFuzzer)' \
      "$log" | head -20 | sed 's/^/    /'
  fi
}

echo "fuzz: ${#targets[@]} targets, ${seconds}s each, $parallel at a time (logs in $build/fuzz/logs)"
mkdir -p "$build/fuzz/logs"
for t in "${targets[@]}"; do
  rm -f "$build/fuzz/logs/$t.rc"
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do
    wait -n
  done
  (
    run_one "$t"
    rc=$?
    echo "$rc" > "$build/fuzz/logs/$t.rc"
    summarize "$t" "$rc"
  ) &
done
wait
failed=0
for t in "${targets[@]}"; do
  [ "$(cat "$build/fuzz/logs/$t.rc" 2>/dev/null)" = 0 ] || failed=1
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: FAILED (reproduce with: $build/fuzz/fuzz_TARGET ARTIFACT)"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed"
