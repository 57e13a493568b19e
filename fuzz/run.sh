#!/usr/bin/env bash
# fuzz/run.sh SECONDS [TARGET...]
#
# Builds the fuzz targets (cargo-fuzz: libFuzzer + AddressSanitizer, release with debug
# assertions and overflow checks) and runs each TARGET (all when none is given) for
# SECONDS, one at a time in one process (a single worker, a single job). The corpus
# grows in fuzz/corpus/<target>/ (seeded read-only from fuzz/seeds/<target>/), findings
# land in fuzz/artifacts/<target>/ and the full libFuzzer output in
# fuzz/logs/<target>.log. Exits non-zero if any target crashed, leaked, timed out
# (-timeout=10) or ran out of memory (-rss_limit_mb=2048). Prints per target:
# executions, exec/s, coverage (cov:), features, corpus size.
#
# Works from any directory, non-interactively (CI=true). Extra libFuzzer flags can be
# passed in FUZZ_ARGS (e.g. FUZZ_ARGS="-max_len=16384").
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ALL_TARGETS=(handshake_request handshake_response frame_header connection_server
    connection_client roundtrip utf8_stream unmask inflate_stream deflate_roundtrip)

usage() { echo "usage: $0 SECONDS [TARGET...]  (targets: ${ALL_TARGETS[*]})" >&2; exit 2; }
[[ $# -ge 1 && "$1" =~ ^[0-9]+$ ]] || usage
SECONDS_PER_TARGET=$1
shift
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "unknown target: $t" >&2; usage; }
done

export CI=true CARGO_TERM_COLOR=never
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo "+$TOOLCHAIN" fuzz --version >/dev/null 2>&1; then
    echo "=== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd "$FUZZ_DIR"
mkdir -p corpus artifacts logs

echo "=== building ${TARGETS[*]}"
for t in "${TARGETS[@]}"; do
    cargo "+$TOOLCHAIN" fuzz build --release --debug-assertions "$t"
done

failed=()
summary=()
for t in "${TARGETS[@]}"; do
    corpus="corpus/$t"
    mkdir -p "$corpus" "artifacts/$t"
    log="logs/$t.log"
    echo "=== $t: ${SECONDS_PER_TARGET}s (log: fuzz/$log)"
    status=0
    # -fork/-jobs are not used: one process is one worker running one job, and its
    # output stays in one log.
    # shellcheck disable=SC2086
    cargo "+$TOOLCHAIN" fuzz run --release --debug-assertions "$t" "$corpus" "seeds/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" \
        -timeout=10 \
        -rss_limit_mb=2048 \
        -malloc_limit_mb=2048 \
        -max_len=8192 \
        -dict="$FUZZ_DIR/websocket.dict" \
        -print_final_stats=1 \
        ${FUZZ_ARGS:-} \
        >"$log" 2>&1 </dev/null || status=$?
    execs=$(awk '/^stat::number_of_executed_units:/ {v=$2} END {print v}' "$log")
    rate=$(awk '/^stat::average_exec_per_sec:/ {v=$2} END {print v}' "$log")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | awk '{print $2}' || true)
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | awk '{print $2}' || true)
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(du -sb "$corpus" | cut -f1)
    line=$(printf '%-19s execs=%-11s exec/s=%-7s cov=%-6s ft=%-6s corpus=%s files (%s bytes)' \
        "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$files" "$bytes")
    if [[ $status -ne 0 ]]; then
        line+="  FAILED (exit $status)"
        failed+=("$t")
        grep -E 'ERROR: libFuzzer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|panicked at|SUMMARY|Test unit written' "$log" | head -8 | sed 's/^/    /' || true
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "=== summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]} (artifacts in fuzz/artifacts/, logs in fuzz/logs/)"
    exit 1
fi
