#!/usr/bin/env bash
# wsengine next to tungstenite, fastwebsockets and tokio-websockets.
#
# 1. Builds this crate in release (the criterion bench and the echo servers).
# 2. Runs the criterion comparison (`cargo bench` here: the recv and send workloads of
#    the root benches, every implementation in the same run) and prints a markdown table
#    per workload (msgs/s, MB/s, ratio wsengine / best peer) from the criterion medians.
# 3. LOAD GENERATOR: if `wsengine load` is available, runs it against each echo server
#    (wsengine serve and the three peers), server pinned to CPU 0, generator to CPU 1.
#
# Usage: benches/compare/run.sh [criterion filter, e.g. 'recv/' or 'send_client/text']
# Environment:
#   SKIP_BENCH=1   reuse the last criterion results (tables only)
#   SKIP_LOAD=1    skip the load-generator section
#   BENCH_NICE=N   run the criterion benches under `nice -n N` (e.g. -10 on a machine
#                  shared with a fuzzer or builds; negative values need root)
#   LOAD_WARMUP (default 1s), LOAD_DURATION (default 5s): per load run
#   LOAD_SCENARIOS: space-separated name=ARGS pairs with commas for spaces, e.g.
#     "c1_16B_inflight64=--connections,1,--in-flight,64,--size,16"
# The numbers are wall-clock and noisy on a shared machine: compare ratios within one run.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
export CARGO_TERM_COLOR=never

step() { printf '\n=== %s\n' "$*"; }
t_start=$SECONDS

step "machine"
echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
    "; flags: $(grep -m1 -o -w -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
rustc --version

step "build (release)"
t0=$SECONDS
cargo build --release --bins --benches
echo "build: $((SECONDS - t0)) s"

if [[ "${SKIP_BENCH:-0}" != 1 ]]; then
    step "criterion: cargo bench ${1:-}"
    t0=$SECONDS
    nice_cmd=()
    if [[ -n "${BENCH_NICE:-}" ]]; then nice_cmd=(nice -n "$BENCH_NICE"); fi
    "${nice_cmd[@]}" cargo bench --bench compare -- ${1:+"$1"}
    echo "criterion run: $((SECONDS - t0)) s"
fi

step "tables (criterion medians)"
python3 "$here/report.py" "$here/target/criterion"

# =====================================================================================
# LOAD GENERATOR SECTION: `wsengine load` (root crate, feature `load`) against each echo
# server over loopback. Runs only if `target/release/wsengine load --help` succeeds.
# =====================================================================================
run_load_section() {
    step "load generator"
    echo "building $root/target/release/wsengine with --features load"
    if ! (cd "$root" && cargo build --release --features load --bin wsengine); then
        echo "NOTE: the root crate does not build with --features load: skipping the load section."
        return 0
    fi
    # A private copy: another build in the root crate may replace target/release/wsengine
    # (without `load`) while this section runs.
    local wsengine="$here/target/wsengine-load"
    cp "$root/target/release/wsengine" "$wsengine"
    if ! "$wsengine" load --help >/dev/null 2>&1; then
        echo "NOTE: 'target/release/wsengine load --help' fails (no load subcommand): skipping the load section."
        return 0
    fi
    local pin_server=() pin_client=()
    if command -v taskset >/dev/null && [[ "$(nproc)" -ge 2 ]]; then
        pin_server=(taskset -c 0)
        pin_client=(taskset -c 1)
    else
        echo "NOTE: taskset or a second CPU is missing: running without CPU pinning."
    fi

    local servers=(
        "wsengine=$wsengine serve --mode echo --listen"
        "tungstenite=$here/target/release/echo_tungstenite --listen"
        "fastwebsockets=$here/target/release/echo_fastwebsockets --listen"
        "tokio-websockets=$here/target/release/echo_tokio_websockets --listen"
    )
    local scenarios="${LOAD_SCENARIOS:-c1_16B_inflight64=--connections,1,--in-flight,64,--size,16 c50_1KiB_inflight1=--connections,50,--in-flight,1,--size,1024 c1_64KiB_text_inflight8=--connections,1,--in-flight,8,--size,65536,--text}"
    local out="$here/target/load"
    rm -rf "$out" && mkdir -p "$out"
    local port=19301
    for scenario in $scenarios; do
        local name="${scenario%%=*}" args
        IFS=',' read -r -a args <<<"${scenario#*=}"
        for entry in "${servers[@]}"; do
            local server="${entry%%=*}" cmd
            read -r -a cmd <<<"${entry#*=}"
            port=$((port + 1))
            local addr="127.0.0.1:$port"
            "${pin_server[@]}" "${cmd[@]}" "$addr" >"$out/${name}__${server}.server.log" 2>&1 &
            local pid=$!
            local ready=0
            for _ in $(seq 50); do
                if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ready=1; break; fi
                sleep 0.1
            done
            if [[ $ready != 1 ]]; then
                echo "NOTE: $server did not listen on $addr; see $out/${name}__${server}.server.log"
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
                continue
            fi
            echo "--- $name: $server (pid $pid) on $addr"
            timeout 120 "${pin_client[@]}" "$wsengine" load "ws://$addr/" "${args[@]}" \
                --warmup "${LOAD_WARMUP:-1s}" --duration "${LOAD_DURATION:-5s}" \
                --server-pid "$pid" --json "$out/${name}__${server}.json" \
                >"$out/${name}__${server}.log" 2>&1 \
                || echo "NOTE: load run failed (exit $?); see $out/${name}__${server}.log"
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        done
    done
    python3 "$here/report.py" --load "$out"
}

if [[ "${SKIP_LOAD:-0}" != 1 ]]; then
    t0=$SECONDS
    run_load_section
    echo "load section: $((SECONDS - t0)) s"
fi
# =====================================================================================

echo
echo "run.sh total: $((SECONDS - t_start)) s"
