#!/usr/bin/env bash
# Pub/sub fan-out (issue #17): the hub next to what users would pick instead, with the
# same load generator and the same work per message.
#
# Servers (PUBSUB_SERVERS, default all five):
#   hub-1core   wsengine hub, pinned to CPU 0 (one tokio worker: the runtime sizes itself
#               by the CPUs it may run on); bench configuration below
#   hub-2cores  wsengine hub on both CPUs (two workers); the generator shares them
#   broadcast   wsengine serve --mode broadcast (every message relayed to every client,
#               the sender included: the engine's own fan-out, no protocol), CPU 0
#   node-ws     node/pubsub_ws.js: the hub protocol's subset on Node's ws, one
#               JSON.stringify per publication then ws.send to every member, CPU 0
#   socketio    node/pubsub_socketio.js: Socket.IO 4, socket.join / io.to(ch).emit, CPU 0
# The generator (`wsengine load --hub --dialect hub|socketio|broadcast`) runs on CPU 1,
# except next to hub-2cores. Against broadcast a publisher's own relayed message stands
# for the publish reply, so --in-flight bounds the fan-outs under way as with the hub.
#
# 1. Saturation: for each server, subscriber count (PUBSUB_SUBSCRIBERS, default
#    "100 1000 10000") and payload size (PUBSUB_SIZES, default "16 1024"): one publisher,
#    no rate cap, at most PUBSUB_IN_FLIGHT (default 16) publications not yet received by
#    every subscriber (--until-delivered: a reply only says the server took the
#    publication, and a server faster than the generator's reader would otherwise queue
#    until its slow-consumer limit closes subscribers: the hub's 4003 at 1 MiB);
#    PUBSUB_REPS (default 3) runs of PUBSUB_WARMUP (1s) + PUBSUB_DURATION (3s), a fresh
#    server per point; medians of deliveries/s, latency percentiles, server CPU.
# 2. Latency: at 1/D of the publishes/s hub-1core reached at each point, for each D in
#    PUBSUB_LATENCY_DIVISORS (default "2 4": half and a quarter), hub-1core and broadcast
#    at that fixed rate (PUBSUB_LATENCY=0 skips). Without the saturation runs' window
#    each publication tends to be its own write per subscriber, so a fixed fraction of
#    the rate is not that fraction of the CPU: the server CPU is in the table.
# 3. Memory per idle subscriber: PUBSUB_IDLE (default 5000) subscribers on one channel,
#    no publisher; (server RSS after - before) / N for hub, broadcast, node-ws, socketio.
#
# Hub bench configuration (a temporary TOML): anonymous access, publish_rate 1000000,
# connect_rate 100000, presence off (Socket.IO and the Node peer have none; with it each
# subscribe is a join sent to every subscriber), history and outbound_cap at their
# defaults. broadcast gets --max-connections 20000, --no-deflate, --max-memory 4GiB.
# Results: target/pubsub/*.json; tables on stdout (pubsub_report.py).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
export CARGO_TERM_COLOR=never
step() { printf '\n=== %s\n' "$*"; }

servers_all=(hub-1core hub-2cores broadcast node-ws socketio)
read -r -a servers <<<"${PUBSUB_SERVERS:-${servers_all[*]}}"
read -r -a subscribers <<<"${PUBSUB_SUBSCRIBERS:-100 1000 10000}"
read -r -a sizes <<<"${PUBSUB_SIZES:-16 1024}"
reps="${PUBSUB_REPS:-3}"
warmup="${PUBSUB_WARMUP:-1s}"
duration="${PUBSUB_DURATION:-3s}"
in_flight="${PUBSUB_IN_FLIGHT:-16}"
idle_n="${PUBSUB_IDLE:-5000}"

step "machine"
echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); kernel $(uname -r)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %T UTC')"

step "build"
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --release -p wsengine-cli --bin wsengine)
out="$here/target/pubsub"
rm -rf "$out" && mkdir -p "$out"
# A private copy: another build may replace the binary while this runs.
wsengine="$out/wsengine"
cp "$target/release/wsengine" "$wsengine"
"$wsengine" load --help | grep -q -- '--dialect' || {
    echo "wsengine load has no --dialect" >&2
    exit 1
}
have_node=0
if command -v node >/dev/null && command -v npm >/dev/null; then
    (cd node && npm ci --no-audit --no-fund --loglevel=error) && have_node=1
    echo "node $(node --version), ws $(node -p "require('./node/node_modules/ws/package.json').version")," \
        "socket.io $(node -p "require('./node/node_modules/socket.io/package.json').version")"
fi
if [[ $have_node != 1 ]]; then
    echo "NOTE: node or npm is missing: node-ws and socketio are skipped."
    if [[ ${PUBSUB_STRICT:-0} == 1 ]]; then
        echo "FAILED: the Node peers cannot run (PUBSUB_STRICT=1)" >&2
        exit 1
    fi
    s=()
    for x in "${servers[@]}"; do [[ $x == node-ws || $x == socketio ]] || s+=("$x"); done
    servers=("${s[@]}")
fi

# 10,000 subscribers: as many sockets in the server and in the generator.
ulimit -n "$(ulimit -Hn)"
echo "open files: $(ulimit -n)"
if [[ $(ulimit -n) -lt $((${subscribers[-1]} + 1000)) ]]; then
    echo "NOTE: ulimit -n $(ulimit -n) is low for ${subscribers[-1]} subscribers"
fi

pin0=() pin1=() pinall=()
if command -v taskset >/dev/null && [[ "$(nproc)" -ge 2 ]]; then
    pin0=(taskset -c 0) pin1=(taskset -c 1) pinall=(taskset -c 0,1)
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

# start_server NAME PORT LOG: sets server_pid, url, dialect, client_pin.
start_server() {
    local name=$1 port=$2 log=$3
    client_pin=("${pin1[@]}")
    case $name in
        hub-1core | hub-2cores)
            local pin=("${pin0[@]}")
            if [[ $name == hub-2cores ]]; then pin=("${pinall[@]}") client_pin=("${pinall[@]}"); fi
            "${pin[@]}" "$wsengine" hub --listen "127.0.0.1:$port" --config "$hub_toml" >"$log" 2>&1 &
            url="ws://127.0.0.1:$port/ws" dialect=hub
            ;;
        broadcast)
            "${pin0[@]}" "$wsengine" serve --mode broadcast --listen "127.0.0.1:$port" \
                --max-connections 20000 --no-deflate --max-memory 4GiB >"$log" 2>&1 &
            url="ws://127.0.0.1:$port/" dialect=broadcast
            ;;
        node-ws)
            "${pin0[@]}" node node/pubsub_ws.js --port "$port" >"$log" 2>&1 &
            url="ws://127.0.0.1:$port/ws" dialect=hub
            ;;
        socketio)
            "${pin0[@]}" node node/pubsub_socketio.js --port "$port" >"$log" 2>&1 &
            url="ws://127.0.0.1:$port" dialect=socketio
            ;;
        *)
            echo "unknown server $name" >&2
            return 1
            ;;
    esac
    server_pid=$!
    local i
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "NOTE: $name did not start listening on $port; see $log"
    failures=$((failures + 1))
    stop_server
    return 1
}

# load BASE ARGS...: one generator run, bounded; a failed run still leaves its JSON.
load() {
    local base=$1
    shift
    timeout 180 "${client_pin[@]}" "$wsengine" load "$url" --hub --dialect "$dialect" \
        --server-pid "$server_pid" --json "$base.json" "$@" >"$base.log" 2>&1 \
        || {
            echo "NOTE: run failed (exit $?): $(grep -m1 -i 'error' "$base.log" | cut -c1-200); see $base.log"
            failures=$((failures + 1))
        }
}

# Runs that failed or servers that did not start; PUBSUB_STRICT=1 (CI's smoke run) makes
# any of them the script's failure.
failures=0
port=19500
step "saturation: 1 publisher, no rate cap, $in_flight publications in flight until delivered; $reps rep(s) of $warmup + $duration"
for c in "${subscribers[@]}"; do
    for size in "${sizes[@]}"; do
        for server in "${servers[@]}"; do
            port=$((port + 1))
            start_server "$server" "$port" "$out/sat__${server}__c${c}__s${size}.server.log" || continue
            for rep in $(seq "$reps"); do
                base="$out/sat__${server}__c${c}__s${size}__r${rep}"
                echo "--- $server: $c subscribers, $size B, rep $rep (pid $server_pid)"
                load "$base" --subscribers "$c" --publishers 1 --rate 0 --in-flight "$in_flight" --until-delivered \
                    --size "$size" --warmup "$warmup" --duration "$duration"
            done
            stop_server
        done
    done
done

if [[ "${PUBSUB_LATENCY:-1}" == 1 ]]; then
    step "latency at a fraction of the hub's saturation (hub-1core and broadcast, fixed rate)"
    for div in ${PUBSUB_LATENCY_DIVISORS:-2 4}; do
    for c in "${subscribers[@]}"; do
        for size in "${sizes[@]}"; do
            rate="$(python3 "$here/pubsub_report.py" --rate "$out" hub-1core "$c" "$size" "$div")"
            if [[ -z $rate || $rate == 0 ]]; then
                echo "NOTE: no hub-1core saturation figure for $c x $size B: latency point skipped"
                continue
            fi
            for server in hub-1core broadcast; do
                port=$((port + 1))
                start_server "$server" "$port" "$out/lat${div}__${server}__c${c}__s${size}.server.log" || continue
                for rep in $(seq "$reps"); do
                    base="$out/lat${div}__${server}__c${c}__s${size}__r${rep}"
                    echo "--- $server: $c subscribers, $size B at $rate publishes/s, rep $rep"
                    load "$base" --subscribers "$c" --publishers 1 --rate "$rate" --in-flight "$in_flight" \
                        --size "$size" --warmup "$warmup" --duration "$duration"
                done
                stop_server
            done
        done
    done
    done
fi

if [[ "$idle_n" -gt 0 ]]; then
    step "memory per idle subscriber: $idle_n subscribers, no publisher"
    for server in hub-1core broadcast node-ws socketio; do
        [[ " ${servers[*]} " == *" $server "* ]] || continue
        port=$((port + 1))
        start_server "$server" "$port" "$out/idle__${server}.server.log" || continue
        sleep 0.5
        echo "--- $server: $idle_n idle subscribers (pid $server_pid)"
        load "$out/idle__${server}" --subscribers "$idle_n" --publishers 0 --warmup 0s --duration 2s
        stop_server
    done
fi

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %T UTC')"
python3 "$here/pubsub_report.py" "$out"
if [[ ${PUBSUB_STRICT:-0} == 1 && $failures -gt 0 ]]; then
    echo "FAILED: $failures run(s) failed or server(s) did not start (PUBSUB_STRICT=1)" >&2
    exit 1
fi
