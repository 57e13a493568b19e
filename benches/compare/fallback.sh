#!/usr/bin/env bash
# Fallback transports under load (issue #20): the hub's subscribers over SSE (GET /sse)
# and long polling (GET /poll) next to the same runs over WebSocket, with the same load
# generator (`wsengine load --hub --transport websocket|sse|long-polling`; publishers
# always publish over WebSocket). One channel, one publisher, 16 B payloads; the hub
# pinned to CPU 0 (one tokio worker) with pubsub.sh's bench configuration, the generator
# on CPU 1; a fresh hub per run.
#
# Points (FALLBACK_POINTS, default "websocket:10000 sse:10000 websocket:2000
# long-polling:2000"), each TRANSPORT:SUBSCRIBERS:
# 1. saturation: no rate cap, FALLBACK_IN_FLIGHT (16) publications in flight until
#    delivered to every subscriber (--until-delivered), FALLBACK_WARMUP (1s) +
#    FALLBACK_DURATION (3s): deliveries/s, latency, server CPU per delivery;
# 2. latency at a fixed rate: FALLBACK_RATE publishes/s (default 25: a quarter of the
#    hub's WebSocket saturation at 10,000 subscribers x 16 B, pubsub.sh's second latency
#    point; at 50/s SSE subscribers fall behind on this 2-core machine);
# 3. memory per subscriber: the subscribers alone (--publishers 0) on a fresh hub:
#    (server RSS after - before) / subscribers.
# FALLBACK_REPS (3) runs of 1 and 2 per point (medians), one of 3.
# FALLBACK_HUB_BIN: another `wsengine` binary to serve the hub (e.g. another commit's
# build); the generator stays this tree's. FALLBACK_OUT: the results' directory.
# Results: target/fallback/*.json; a table on stdout.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
export CARGO_TERM_COLOR=never

read -r -a points <<<"${FALLBACK_POINTS:-websocket:10000 sse:10000 websocket:2000 long-polling:2000}"
reps="${FALLBACK_REPS:-3}"
warmup="${FALLBACK_WARMUP:-1s}"
duration="${FALLBACK_DURATION:-3s}"
in_flight="${FALLBACK_IN_FLIGHT:-16}"
rate="${FALLBACK_RATE:-25}"

echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); kernel $(uname -r)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %T UTC'); commit $(git -C "$root" rev-parse --short HEAD)"

target="${CARGO_TARGET_DIR:-$root/target}"
if [[ ${FALLBACK_NO_BUILD:-0} != 1 ]]; then
    (cd "$root" && cargo build --release -p wsengine-cli --bin wsengine)
fi
out="$here/target/fallback"
out="${FALLBACK_OUT:-$out}"
rm -rf "$out" && mkdir -p "$out"
wsengine="$out/wsengine"
cp "$target/release/wsengine" "$wsengine"
hub_bin="$wsengine"
if [[ -n ${FALLBACK_HUB_BIN:-} ]]; then
    hub_bin="$out/wsengine-hub"
    cp "$FALLBACK_HUB_BIN" "$hub_bin"
    echo "hub binary: $FALLBACK_HUB_BIN"
fi
"$wsengine" load --help | grep -q -- '--transport' || {
    echo "wsengine load has no --transport" >&2
    exit 1
}
ulimit -n "$(ulimit -Hn)"
echo "open files: $(ulimit -n)"

pin0=() pin1=()
if command -v taskset >/dev/null && [[ "$(nproc)" -ge 2 ]]; then
    pin0=(taskset -c 0) pin1=(taskset -c 1)
fi

hub_toml="$out/hub.toml"
cat >"$hub_toml" <<'TOML'
[auth]
allow_anonymous = true
[limits]
publish_rate = 1000000
connect_rate = 100000
[namespaces.default]
presence = false
TOML

server_pid=""
stop_server() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        local i
        for i in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap stop_server EXIT

start_hub() {
    local port=$1 log=$2
    "${pin0[@]}" "$hub_bin" hub --listen "127.0.0.1:$port" --config "$hub_toml" >"$log" 2>&1 &
    server_pid=$!
    local i
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "NOTE: the hub did not start on $port; see $log"
    stop_server
    return 1
}

failures=0
load() {
    local base=$1 transport=$2
    shift 2
    timeout 300 "${pin1[@]}" "$wsengine" load "ws://127.0.0.1:$port/ws" --hub --transport "$transport" \
        --server-pid "$server_pid" --json "$base.json" "$@" >"$base.log" 2>&1 \
        || {
            echo "NOTE: run failed (exit $?): $(grep -m1 -i 'error' "$base.log" | cut -c1-300); see $base.log"
            failures=$((failures + 1))
        }
}

port=19800
for point in "${points[@]}"; do
    transport=${point%%:*} n=${point##*:}
    for kind in sat lat idle; do
        if [[ $kind == idle ]]; then
            port=$((port + 1))
            start_hub "$port" "$out/${kind}__${transport}__c${n}.server.log" || continue
            sleep 0.5
            echo "--- $transport: $n idle subscribers (memory)"
            load "$out/idle__${transport}__c${n}" "$transport" --subscribers "$n" --publishers 0 \
                --warmup 0s --duration 2s
            stop_server
        else
            for rep in $(seq "$reps"); do
                # A fresh hub per run: nothing of the previous run's sessions in it.
                port=$((port + 1))
                base="$out/${kind}__${transport}__c${n}__r${rep}"
                start_hub "$port" "$base.server.log" || continue
                if [[ $kind == sat ]]; then
                    echo "--- $transport: $n subscribers, saturation, rep $rep"
                    load "$base" "$transport" --subscribers "$n" --publishers 1 --rate 0 \
                        --in-flight "$in_flight" --until-delivered --size 16 --warmup "$warmup" --duration "$duration"
                else
                    echo "--- $transport: $n subscribers, $rate publishes/s, rep $rep"
                    load "$base" "$transport" --subscribers "$n" --publishers 1 --rate "$rate" \
                        --in-flight "$in_flight" --size 16 --warmup "$warmup" --duration "$duration"
                fi
                stop_server
            done
        fi
    done
done

echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %T UTC')"
python3 - "$out" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
def load(pattern):
    runs = []
    for p in sorted(glob.glob(os.path.join(out, pattern))):
        try:
            runs.append(json.load(open(p)))
        except Exception:
            pass
    return runs
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def f(x, d=0):
    return "-" if x is None else f"{x:,.{d}f}"
print("| transport | subscribers | deliveries/s (saturation) | p50 µs | p99 µs | server µs/delivery | p99 µs at fixed rate (publishes/s) | server CPU % at fixed rate | RSS per subscriber (KiB) | errors | runs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
seen = []
for p in sorted(glob.glob(os.path.join(out, "sat__*__r1.json")) + glob.glob(os.path.join(out, "idle__*.json"))):
    key = os.path.basename(p).split("__")[1:3]
    key = (key[0], key[1].split(".")[0])
    if key not in seen:
        seen.append(key)
for transport, c in seen:
    sat = load(f"sat__{transport}__{c}__r*.json")
    lat = load(f"lat__{transport}__{c}__r*.json")
    idle = load(f"idle__{transport}__{c}.json")
    errors = sum(r["errors"]["total"] for r in sat + lat + idle)
    kib = None
    if idle and idle[0].get("server"):
        s = idle[0]["server"]
        kib = (s["rss_after_bytes"] - s["rss_before_bytes"]) / idle[0]["settings"]["subscribers"] / 1024
    rate = lat[0]["settings"]["rate_per_publisher"] if lat else None
    print(f"| {transport} | {int(c[1:]):,} | {f(med(r['deliveries_per_s'] for r in sat))} | "
          f"{f(med(r['latency_us']['p50'] for r in sat if r['latency_us']))} | "
          f"{f(med(r['latency_us']['p99'] for r in sat if r['latency_us']))} | "
          f"{f(med((r['server'] or {}).get('cpu_us_per_delivery') for r in sat), 2)} | "
          f"{f(med(r['latency_us']['p99'] for r in lat if r['latency_us']))} ({f(rate)}) | "
          f"{f(med((r['server'] or {}).get('cpu_percent') for r in lat))} | {f(kib, 2)} | {errors} | {len(sat)}/{len(lat)}/{len(idle)} |")
PY
if [[ $failures -gt 0 ]]; then
    echo "$failures run(s) failed" >&2
    exit 1
fi
