#!/usr/bin/env bash
# Memory per idle connection: `wsengine load --idle N --hold 5s --server-pid PID` against
# a FRESH echo server for every case (memory freed earlier may still count as resident),
# with and without permessage-deflate where the server has it, and (IDLE_TLS) over wss://
# for wsengine and the three Rust peers.
#
# Usage: benches/compare/idle.sh              (node-ws and python-websockets need
#                                             run.sh's installs: node/node_modules and
#                                             target/venv; else skipped with a NOTE)
# Environment:
#   IDLE_CONNECTIONS (default 10000), IDLE_HOLD (default 5s)
#   IDLE_CASES: space-separated server:deflate pairs (deflate: on = serve with deflate and
#     load with --deflate; off = neither), or server:off:wss for idle TLS connections
#     (wss://), default every plain case below (and the wss ones with IDLE_TLS=1)
#   IDLE_TLS (default 0): 1 adds the wss:// cases (wsengine, tungstenite, fastwebsockets,
#     tokio-websockets, each :off:wss) to the default cases, "only" runs them alone. They
#     use a throwaway CA and localhost certificate made by openssl now (tls-cert.sh,
#     removed at exit; IDLE_TLS_KEY ec or rsa, default ec), the same for every server,
#     and every server's rustls configuration is wsengine-tls' (see src/lib.rs). An idle
#     TLS connection has completed its TLS and WebSocket handshakes and sent nothing
#     since (rustls' buffers as the handshake left them).
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

# The wss:// cases' certificate (made only if a wss case runs).
case "${IDLE_TLS:-0}" in
    0) tls_cases="" ;;
    1 | only) tls_cases="wsengine:off:wss tungstenite:off:wss fastwebsockets:off:wss tokio-websockets:off:wss" ;;
    *)
        echo "IDLE_TLS must be 0, 1 or only, not $IDLE_TLS" >&2
        exit 2
        ;;
esac
tls_flags="" ca="" host=localhost
if [[ " ${IDLE_CASES:-$tls_cases} " == *":wss "* ]]; then
    # shellcheck source=tls-cert.sh
    source "$here/tls-cert.sh"
    tls_dir="$(mktemp -d "${TMPDIR:-/tmp}/wsengine-idle-tls.XXXXXX")"
    trap 'rm -rf "$tls_dir"' EXIT
    make_test_certs "$tls_dir" "${IDLE_TLS_KEY:-ec}"
    ca="$tls_dir/ca.pem"
    tls_flags="--tls-cert $tls_dir/cert.pem --tls-key $tls_dir/key.pem"
    # As run.sh: wss://localhost:PORT/ if localhost is 127.0.0.1 first, where the servers
    # listen; else wss://127.0.0.1:PORT/ (the certificate names both).
    if [[ "$(getent ahosts localhost 2>/dev/null | awk 'NR == 1 { print $1 }')" != 127.0.0.1 ]]; then
        host=127.0.0.1
    fi
    echo "wss:// cases: throwaway CA and localhost certificate (${IDLE_TLS_KEY:-ec}) in $tls_dir; wss://$host:PORT/"
fi

# server:deflate[:wss] -> command (the listen address is appended)
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
    [wsengine:off:wss]="$wsengine serve --mode echo --no-deflate $tls_flags --listen"
    [tungstenite:off:wss]="$here/target/release/echo_tungstenite $tls_flags --listen"
    [fastwebsockets:off:wss]="$here/target/release/echo_fastwebsockets $tls_flags --listen"
    [tokio-websockets:off:wss]="$here/target/release/echo_tokio_websockets $tls_flags --listen"
)
plain_cases="wsengine:on wsengine:off tungstenite:off fastwebsockets:off tokio-websockets:off node-ws:on node-ws:off python-websockets:on python-websockets:off"
case "${IDLE_TLS:-0}" in
    0) default_cases="$plain_cases" ;;
    1) default_cases="$plain_cases $tls_cases" ;;
    only) default_cases="$tls_cases" ;;
esac
cases="${IDLE_CASES:-$default_cases}"
out="$here/target/idle"
rm -rf "$out" && mkdir -p "$out"
port=19800

# One fresh server, one idle run; returns the load command's status.
run_case() {
    local server="$1" deflate="$2" transport="$3" n="$4" cmd extra=() url
    local key="$server:$deflate"
    [[ $transport == wss ]] && key+=":wss"
    read -r -a cmd <<<"${server_cmd[$key]}"
    [[ $deflate == on ]] && extra=(--deflate)
    port=$((port + 1))
    url="ws://127.0.0.1:$port/"
    [[ $transport == wss ]] && url="wss://$host:$port/" && extra+=(--ca "$ca")
    local base="$out/${server}__${transport}__deflate-${deflate}__${n}"
    taskset -c 0 "${cmd[@]}" "127.0.0.1:$port" >"$base.server.log" 2>&1 &
    local pid=$! status=0
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.5 # let a fresh runtime settle before the first RSS sample
    timeout 300 taskset -c 1 "$wsengine" load "$url" --idle "$n" \
        --hold "${IDLE_HOLD:-5s}" --server-pid "$pid" "${extra[@]}" --json "$base.json" \
        >"$base.log" 2>&1 || status=$?
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "NOTE: $server ($transport, deflate $deflate) exited during the run at $n connections"
        status=1
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [[ $status != 0 ]]; then
        echo "NOTE: $server ($transport, deflate $deflate) at $n idle connections failed (exit $status); see $base.log"
        rm -f "$base.json"
    fi
    return "$status"
}

for c in $cases; do
    if [[ -z "${server_cmd[$c]:-}" ]]; then echo "NOTE: unknown case $c"; continue; fi
    IFS=: read -r server deflate transport <<<"$c"
    transport="${transport:-ws}"
    case $server in
    node-ws) [[ -d node/node_modules/ws ]] && command -v node >/dev/null \
        || { echo "NOTE: $server skipped: run run.sh first (npm ci in node/)"; continue; } ;;
    python-websockets) [[ -x target/venv/bin/python ]] \
        || { echo "NOTE: $server skipped: run run.sh first (target/venv)"; continue; } ;;
    esac
    echo "--- $server, $transport, deflate $deflate"
    run_case "$server" "$deflate" "$transport" "${IDLE_CONNECTIONS:-10000}" \
        || run_case "$server" "$deflate" "$transport" "${IDLE_FALLBACK:-1000}" || true
done

python3 - "$out" <<'EOF'
import json, os, sys

out = sys.argv[1]
ORDER = ["wsengine", "tungstenite", "fastwebsockets", "tokio-websockets", "node-ws", "python-websockets"]
rows = []
for name in os.listdir(out):
    if not name.endswith(".json"):
        continue
    server, transport, deflate, n = name[: -len(".json")].split("__")
    with open(os.path.join(out, name)) as f:
        r = json.load(f)
    s = r.get("server") or {}
    rows.append((server, transport, deflate.split("-")[1], int(n), r.get("open_s"), s.get("rss_before_bytes"),
                 s.get("rss_after_bytes"), s.get("rss_per_connection_bytes"), (r.get("errors") or {}).get("total")))
rows.sort(key=lambda r: (r[1] == "wss", ORDER.index(r[0]) if r[0] in ORDER else 99, r[2] == "off"))
print("\n### idle connections: server memory per connection\n")
print("| server | transport | permessage-deflate | idle connections | opened in s | server RSS before MiB | after MiB | bytes per idle connection | errors |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for server, transport, deflate, n, open_s, before, after, per, errors in rows:
    mib = lambda x: "n/a" if x is None else f"{x / (1 << 20):,.1f}"
    print(f"| {server} | {transport} | {deflate} | {n:,} | {open_s:.2f} | {mib(before)} | {mib(after)} | "
          f"{'n/a' if per is None else f'{per:,.0f}'} | {errors} |")
print("\nRSS growth (VmRSS after holding minus before connecting) / connections, fresh server each row.")
print("Idle connections have sent no message, so state a server allocates only with the first")
print("(compressed) message, such as zlib streams, is not counted. A wss row's connections have")
print("finished the TLS handshake (TLS 1.3 session tickets sent) and the WebSocket one; what")
print("rustls keeps per connection (its record buffers, keys) counts.")
EOF
