#!/usr/bin/env bash
# Memory per idle connection: `wsengine load --idle N --hold 5s --server-pid PID` against
# a FRESH echo server for every case (memory freed earlier may still count as resident),
# with and without permessage-deflate where the server has it.
#
# Usage: benches/compare/idle.sh              (node-ws and python-websockets need
#                                             run.sh's installs: node/node_modules and
#                                             target/venv; else skipped with a NOTE)
# Environment:
#   IDLE_CONNECTIONS (default 10000), IDLE_HOLD (default 5s)
#   IDLE_CASES: space-separated server:deflate pairs (deflate: on = serve with deflate and
#     load with --deflate; off = neither), default every server below
#
# Each connection is a file descriptor on both sides: the script raises `ulimit -n` to
# 30000 (or the hard limit, if lower: 20000 in this project's containers, still enough
# for 10,000 as each process has its own) for itself, so for the server and the
# generator both. A server that fails at
# IDLE_CONNECTIONS is tried again at IDLE_FALLBACK (default 1000) and the table says so.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
export CARGO_TERM_COLOR=never

hard="$(ulimit -Hn)"
if [[ $hard == unlimited || $hard -ge 30000 ]]; then ulimit -n 30000; else ulimit -n "$hard"; fi
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); ulimit -n $(ulimit -n); $(date -u +%F)"

(cd "$root" && cargo build --quiet --release -p wsengine-cli --bin wsengine)
cargo build --quiet --release --bins
wsengine="$here/target/wsengine-idle"
cp "$root/target/release/wsengine" "$wsengine"

# server:deflate -> command (the listen address is appended)
declare -A server_cmd=(
    [wsengine:on]="$wsengine serve --mode echo --listen"
    [wsengine:off]="$wsengine serve --mode echo --no-deflate --listen"
    [tungstenite:off]="$here/target/release/echo_tungstenite --listen"
    [fastwebsockets:off]="$here/target/release/echo_fastwebsockets --listen"
    [tokio-websockets:off]="$here/target/release/echo_tokio_websockets --listen"
    [node-ws:on]="node $here/node/echo_ws.js"
    [node-ws:off]="node $here/node/echo_ws.js --no-deflate"
    [python-websockets:on]="$here/target/venv/bin/python $here/python/echo_websockets.py"
    [python-websockets:off]="$here/target/venv/bin/python $here/python/echo_websockets.py --no-deflate"
)
cases="${IDLE_CASES:-wsengine:on wsengine:off tungstenite:off fastwebsockets:off tokio-websockets:off node-ws:on node-ws:off python-websockets:on python-websockets:off}"
out="$here/target/idle"
rm -rf "$out" && mkdir -p "$out"
port=19800

# One fresh server, one idle run; returns the load command's status.
run_case() {
    local server="$1" deflate="$2" n="$3" cmd extra=()
    read -r -a cmd <<<"${server_cmd[$server:$deflate]}"
    [[ $deflate == on ]] && extra=(--deflate)
    port=$((port + 1))
    local base="$out/${server}__deflate-${deflate}__${n}"
    taskset -c 0 "${cmd[@]}" "127.0.0.1:$port" >"$base.server.log" 2>&1 &
    local pid=$! status=0
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.5 # let a fresh runtime settle before the first RSS sample
    timeout 300 taskset -c 1 "$wsengine" load "ws://127.0.0.1:$port/" --idle "$n" \
        --hold "${IDLE_HOLD:-5s}" --server-pid "$pid" "${extra[@]}" --json "$base.json" \
        >"$base.log" 2>&1 || status=$?
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "NOTE: $server (deflate $deflate) exited during the run at $n connections"
        status=1
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [[ $status != 0 ]]; then
        echo "NOTE: $server (deflate $deflate) at $n idle connections failed (exit $status); see $base.log"
        rm -f "$base.json"
    fi
    return "$status"
}

for c in $cases; do
    server="${c%%:*}" deflate="${c#*:}"
    if [[ -z "${server_cmd[$c]:-}" ]]; then echo "NOTE: unknown case $c"; continue; fi
    case $server in
    node-ws) [[ -d node/node_modules/ws ]] && command -v node >/dev/null \
        || { echo "NOTE: $server skipped: run run.sh first (npm ci in node/)"; continue; } ;;
    python-websockets) [[ -x target/venv/bin/python ]] \
        || { echo "NOTE: $server skipped: run run.sh first (target/venv)"; continue; } ;;
    esac
    echo "--- $server, deflate $deflate"
    run_case "$server" "$deflate" "${IDLE_CONNECTIONS:-10000}" \
        || run_case "$server" "$deflate" "${IDLE_FALLBACK:-1000}" || true
done

python3 - "$out" <<'EOF'
import json, os, sys

out = sys.argv[1]
ORDER = ["wsengine", "tungstenite", "fastwebsockets", "tokio-websockets", "node-ws", "python-websockets"]
rows = []
for name in os.listdir(out):
    if not name.endswith(".json"):
        continue
    server, deflate, n = name[: -len(".json")].split("__")
    with open(os.path.join(out, name)) as f:
        r = json.load(f)
    s = r.get("server") or {}
    rows.append((server, deflate.split("-")[1], int(n), r.get("open_s"), s.get("rss_before_bytes"),
                 s.get("rss_after_bytes"), s.get("rss_per_connection_bytes"), (r.get("errors") or {}).get("total")))
rows.sort(key=lambda r: (ORDER.index(r[0]) if r[0] in ORDER else 99, r[1] == "off"))
print("\n### idle connections: server memory per connection\n")
print("| server | permessage-deflate | idle connections | opened in s | server RSS before MiB | after MiB | bytes per idle connection | errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for server, deflate, n, open_s, before, after, per, errors in rows:
    mib = lambda x: "n/a" if x is None else f"{x / (1 << 20):,.1f}"
    print(f"| {server} | {deflate} | {n:,} | {open_s:.2f} | {mib(before)} | {mib(after)} | "
          f"{'n/a' if per is None else f'{per:,.0f}'} | {errors} |")
print("\nRSS growth (VmRSS after holding minus before connecting) / connections, fresh server each row.")
print("Idle connections have sent no message, so state a server allocates only with the first")
print("(compressed) message, such as zlib streams, is not counted.")
EOF
