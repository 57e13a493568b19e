#!/usr/bin/env bash
# Three nodes on one Redis (issue #19): the hub's Redis engine next to Socket.IO 4 with
# @socket.io/redis-adapter, with the same load generator and the same work per message.
#
# For each server (CLUSTER_SERVERS, default "hub socketio"):
#   hub       CLUSTER_NODES (default 3) `wsengine hub --redis URL` processes, the bench
#             configuration of pubsub.sh (anonymous, publish_rate 1000000, connect_rate
#             100000, presence off: Socket.IO has none), one tokio worker each (pinned)
#   socketio  as many `node node/pubsub_socketio.js --redis URL` processes (Socket.IO
#             4.8.4, @socket.io/redis-adapter 8.3.0 on ioredis, as its README sets it up)
# every node and the redis-server on CPU 0, the generator on CPU 1 (taskset), so both
# clusters get the same core; a fresh redis-server (no persistence) per server.
#
# The generator: `wsengine load --hub` with the nodes' URLs: CLUSTER_SUBSCRIBERS (default
# 10000) subscribers on one channel spread over the nodes, one publisher per node (a
# publication made on every node reaches every subscriber on every node), no rate cap, at
# most CLUSTER_IN_FLIGHT (default 16) publications per publisher not yet received by every
# subscriber (--until-delivered), CLUSTER_SIZES (default "16") byte payloads;
# CLUSTER_REPS (default 3) runs of CLUSTER_WARMUP (1s) + CLUSTER_DURATION (3s) on the same
# nodes. It reports deliveries/s, end-to-end latency, the nodes' CPU (--server-pid, summed)
# and the broker's CPU and commands per publication (--broker-redis: Redis's own INFO over
# the window). Against the hub it checks offsets (one sequence per channel, the same on
# every node); against Socket.IO, which shares no offsets between processes, each
# publisher's own sequence.
#
# Then, at a fixed rate both clusters sustain (CLUSTER_LATENCY_RATE publishes/s per
# publisher, default 1: 3 publications/s, 30,000 deliveries/s, about half what Socket.IO's
# cluster reached at saturation on the machine of RESULTS.md), the same runs without
# --until-delivered: the latency of each at equal load (CLUSTER_LATENCY_RATE=0 skips).
#
# Why 10,000 subscribers in all and not per node: the generator holds every connection in
# one process (one clock for the latency), and this machine's hard limit is 20,000 open
# files per process (`ulimit -Hn`).
#
# Results: target/cluster/*.json; tables on stdout (cluster_report.py). CLUSTER_STRICT=1
# (CI's smoke run) fails the script on any failed run.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
export CARGO_TERM_COLOR=never
step() { printf '\n=== %s\n' "$*"; }

read -r -a servers <<<"${CLUSTER_SERVERS:-hub socketio}"
read -r -a sizes <<<"${CLUSTER_SIZES:-16}"
nodes="${CLUSTER_NODES:-3}"
subscribers="${CLUSTER_SUBSCRIBERS:-10000}"
reps="${CLUSTER_REPS:-3}"
warmup="${CLUSTER_WARMUP:-1s}"
duration="${CLUSTER_DURATION:-3s}"
in_flight="${CLUSTER_IN_FLIGHT:-16}"
strict="${CLUSTER_STRICT:-0}"
latency_rate="${CLUSTER_LATENCY_RATE:-1}"

step "machine"
echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); kernel $(uname -r)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %T UTC')"

command -v redis-server >/dev/null || {
    echo "redis-server is missing: install the Debian package redis-server" >&2
    exit 1
}
echo "$(redis-server --version)"

step "build"
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --release -p wsengine-cli --bin wsengine)
out="$here/target/cluster"
rm -rf "$out" && mkdir -p "$out"
# A private copy: another build may replace the binary while this runs.
wsengine="$out/wsengine"
cp "$target/release/wsengine" "$wsengine"
"$wsengine" load --help | grep -q -- '--broker-redis' || {
    echo "wsengine load has no --broker-redis" >&2
    exit 1
}
if [[ " ${servers[*]} " == *" socketio "* ]]; then
    (cd node && npm ci --no-audit --no-fund --loglevel=error)
    echo "node $(node --version), socket.io $(node -p "require('./node/node_modules/socket.io/package.json').version")," \
        "@socket.io/redis-adapter $(node -p "require('./node/node_modules/@socket.io/redis-adapter/package.json').version")," \
        "ioredis $(node -p "require('./node/node_modules/ioredis/package.json').version")"
fi

ulimit -n "$(ulimit -Hn)"
echo "open files: $(ulimit -n)"

pin0=() pin1=()
if command -v taskset >/dev/null && [[ "$(nproc)" -ge 2 ]]; then
    pin0=(taskset -c 0) pin1=(taskset -c 1)
else
    echo "NOTE: taskset or a second CPU is missing: running without CPU pinning."
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

# Every process this script started, stopped on exit whatever happens.
pids=()
redis_pid=""
stop_all() {
    local p
    for p in "${pids[@]}" $redis_pid; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}" $redis_pid; do
        local i
        for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=() redis_pid=""
}
trap stop_all EXIT

# wait_port PORT PID: until something listens on PORT (or PID is gone), 10 s at most.
wait_port() {
    local i
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

failures=0
port=19700
for server in "${servers[@]}"; do
    port=$((port + 1))
    redis_port=$port
    "${pin0[@]}" redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
        --protected-mode no >"$out/$server.redis.log" 2>&1 &
    redis_pid=$!
    wait_port "$redis_port" "$redis_pid" || {
        echo "FAILED: redis-server did not start; see $out/$server.redis.log" >&2
        exit 1
    }
    redis_url="redis://127.0.0.1:$redis_port"
    urls=()
    for n in $(seq "$nodes"); do
        port=$((port + 1))
        log="$out/$server.node$n.log"
        case $server in
            hub)
                "${pin0[@]}" "$wsengine" hub --listen "127.0.0.1:$port" --config "$hub_toml" \
                    --redis "$redis_url" >"$log" 2>&1 &
                urls+=("ws://127.0.0.1:$port/ws") dialect=hub
                ;;
            socketio)
                "${pin0[@]}" node node/pubsub_socketio.js --port "$port" --redis "$redis_url" >"$log" 2>&1 &
                urls+=("ws://127.0.0.1:$port") dialect=socketio
                ;;
            *)
                echo "unknown server $server" >&2
                exit 1
                ;;
        esac
        pids+=($!)
        wait_port "$port" "$!" || {
            echo "NOTE: $server node $n did not start listening on $port; see $log"
            failures=$((failures + 1))
            stop_all
            continue 2
        }
    done
    server_pids="$(IFS=,; echo "${pids[*]}")"
    # run BASE ARGS...: one generator run against the nodes, bounded.
    run() {
        local base=$1
        shift
        timeout 300 "${pin1[@]}" "$wsengine" load "${urls[@]}" --hub --dialect "$dialect" \
            --subscribers "$subscribers" --publishers "$nodes" --in-flight "$in_flight" \
            --warmup "$warmup" --duration "$duration" \
            --server-pid "$server_pids" --broker-redis "$redis_url" \
            --json "$base.json" "$@" >"$base.log" 2>&1 || {
            echo "NOTE: run failed (exit $?): $(grep -m1 -i 'error' "$base.log" | cut -c1-200); see $base.log"
            failures=$((failures + 1))
        }
        grep -E '^(deliveries|latency|broker)' "$base.log" | sed 's/^/    /' || true
    }
    for size in "${sizes[@]}"; do
        for rep in $(seq "$reps"); do
            echo "--- $server: $nodes nodes, $subscribers subscribers, $nodes publishers, $size B, saturation, rep $rep"
            run "$out/sat__${server}__c${subscribers}__s${size}__r${rep}" --rate 0 --until-delivered --size "$size"
        done
        if [[ $latency_rate != 0 ]]; then
            for rep in $(seq "$reps"); do
                echo "--- $server: $nodes nodes, $subscribers subscribers, $size B, $latency_rate publishes/s per publisher, rep $rep"
                run "$out/lat__${server}__c${subscribers}__s${size}__r${rep}" --rate "$latency_rate" --size "$size"
            done
        fi
    done
    stop_all
done

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %T UTC')"
python3 "$here/cluster_report.py" "$out"
if [[ $strict == 1 && $failures -gt 0 ]]; then
    echo "FAILED: $failures run(s) failed or node(s) did not start (CLUSTER_STRICT=1)" >&2
    exit 1
fi
