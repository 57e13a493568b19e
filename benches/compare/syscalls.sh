#!/usr/bin/env bash
# System calls per echoed message: `strace -c -f` (or `perf stat` on the syscall
# tracepoints) on each echo server while `wsengine load` drives it over loopback, then
# the calls by kind divided by the echoes.
#
# Usage: benches/compare/syscalls.sh          (after benches/compare/run.sh has built
#                                             the echo servers, or it builds them)
# Environment:
#   SYSCALL_SERVERS (default "wsengine tungstenite fastwebsockets tokio-websockets
#     node-ws python-websockets"; node-ws and python-websockets need run.sh's installs:
#     node/node_modules and target/venv, else they are skipped with a NOTE)
#   SYSCALL_DURATION (default 2s) per run
#   SYSCALL_POINTS: space-separated name=ARGS (commas for spaces), default
#     "c1_16B_if64=--connections,1,--size,16,--in-flight,64
#      c64_16B_if1=--connections,64,--size,16,--in-flight,1
#      c64_1KiB_if1=--connections,64,--size,1024,--in-flight,1
#      c8_64KiB_if1=--connections,8,--size,65536,--in-flight,1"
#     (one message in flight per connection is the request-response case: nothing to
#     batch, so every call a server makes per wakeup shows)
#   SYSCALL_TOOL (default strace): "perf" counts with `perf stat` on the kernel's
#     syscalls:sys_enter_* tracepoints instead (EAGAIN from sys_exit_* of the read
#     calls), which does not stop the server at each call; it needs tracepoint access
#     (root, or perf_event_paranoid <= -1)
#
# The server and its tracer share CPU 0, the generator has CPU 1. strace stops the
# server at every system call, which slows it several times over: a slowed server finds
# more messages waiting per read and more events per epoll_wait, so the absolute counts
# lean low for servers that batch (more so at 64 in flight than at 1), and epoll_wait
# per echo is far below an unslowed server's. perf counts in the kernel without
# stopping the server: its epoll_wait figures are the real ones. Compare servers within
# one run. Messages are the echoes in the measured window (`--warmup 0s`, so all but
# the last few in flight).
# wsengine serve runs with RUST_LOG=warn: its per-connection INFO lines go to an
# unbuffered stderr as about a dozen write(2)s each, which would count as writes.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
export CARGO_TERM_COLOR=never

tool="${SYSCALL_TOOL:-strace}"
case $tool in
strace)
    if ! command -v strace >/dev/null; then
        echo "strace not found: installing it (apt-get install strace)"
        apt-get install -y strace >/dev/null || { apt-get update >/dev/null && apt-get install -y strace >/dev/null; }
    fi
    tool_version="$(strace -V | head -1)"
    ;;
perf)
    if ! perf stat -e raw_syscalls:sys_enter -o /dev/null true 2>/dev/null; then
        echo "perf cannot count the syscall tracepoints here (install linux-perf, run as root" \
            "or lower kernel.perf_event_paranoid), or use SYSCALL_TOOL=strace"
        exit 1
    fi
    tool_version="$(perf version 2>/dev/null | head -1) (perf stat, syscall tracepoints)"
    ;;
*)
    echo "SYSCALL_TOOL must be strace or perf"
    exit 1
    ;;
esac
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $tool_version; $(date -u +%F)"

(cd "$root" && cargo build --quiet --release -p wsengine-cli --bin wsengine)
cargo build --quiet --release --bins
wsengine="$here/target/wsengine-syscalls"
cp "$root/target/release/wsengine" "$wsengine"

declare -A server_cmd=(
    [wsengine]="env RUST_LOG=warn $wsengine serve --mode echo --listen"
    [tungstenite]="$here/target/release/echo_tungstenite --listen"
    [fastwebsockets]="$here/target/release/echo_fastwebsockets --listen"
    [tokio-websockets]="$here/target/release/echo_tokio_websockets --listen"
    [node-ws]="node $here/node/echo_ws.js"
    [python-websockets]="$here/target/venv/bin/python $here/python/echo_websockets.py"
)
points="${SYSCALL_POINTS:-c1_16B_if64=--connections,1,--size,16,--in-flight,64 c64_16B_if1=--connections,64,--size,16,--in-flight,1 c64_1KiB_if1=--connections,64,--size,1024,--in-flight,1 c8_64KiB_if1=--connections,8,--size,65536,--in-flight,1}"
# perf: all syscall entries (raw_syscalls), the entries of the calls an echo server
# makes by name, and the read calls that failed with EAGAIN (-11). Not every
# syscalls:sys_enter_* tracepoint: closing several hundred events takes perf tens of
# seconds after the server exits.
perf_events=(-e raw_syscalls:sys_enter)
for call in read recvfrom readv recvmsg recvmmsg write writev sendto sendmsg sendmmsg \
    epoll_wait epoll_pwait epoll_pwait2 epoll_ctl poll ppoll io_uring_enter futex \
    sched_yield accept4 close shutdown setsockopt getsockopt ioctl clock_gettime \
    nanosleep clock_nanosleep mmap munmap mremap madvise brk; do
    perf_events+=(-e "syscalls:sys_enter_$call")
done
for call in read recvfrom readv recvmsg recvmmsg; do
    perf_events+=(-e "syscalls:sys_exit_$call" --filter 'ret == -11')
done
out="$here/target/syscalls"
rm -rf "$out" && mkdir -p "$out"
port=19700

for point in $points; do
    name="${point%%=*}"
    IFS=',' read -r -a args <<<"${point#*=}"
    for server in ${SYSCALL_SERVERS:-wsengine tungstenite fastwebsockets tokio-websockets node-ws python-websockets}; do
        case $server in
        node-ws) [[ -d node/node_modules/ws ]] && command -v node >/dev/null \
            || { echo "NOTE: $server skipped: run run.sh first (npm ci in node/)"; continue; } ;;
        python-websockets) [[ -x target/venv/bin/python ]] \
            || { echo "NOTE: $server skipped: run run.sh first (target/venv)"; continue; } ;;
        esac
        read -r -a cmd <<<"${server_cmd[$server]}"
        port=$((port + 1))
        base="$out/${name}__${server}"
        if [[ $tool == perf ]]; then
            taskset -c 0 perf stat -x, -o "$base.perf" "${perf_events[@]}" -- \
                "${cmd[@]}" "127.0.0.1:$port" >"$base.server.log" 2>&1 &
        else
            taskset -c 0 strace -c -f -o "$base.strace" "${cmd[@]}" "127.0.0.1:$port" \
                >"$base.server.log" 2>&1 &
        fi
        tracer=$!
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.1
        done
        timeout 120 taskset -c 1 "$wsengine" load "ws://127.0.0.1:$port/" "${args[@]}" \
            --warmup 0s --duration "${SYSCALL_DURATION:-2s}" --json "$base.json" \
            >"$base.log" 2>&1 || echo "NOTE: load run failed (exit $?); see $base.log"
        # Stop the server (the tracer's child, by its pid): the tracer then writes its
        # summary.
        server_pid="$(cat "/proc/$tracer/task/$tracer/children" 2>/dev/null | awk '{print $1}')"
        if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
        for _ in $(seq 300); do kill -0 "$tracer" 2>/dev/null || break; sleep 0.1; done
        kill "$tracer" 2>/dev/null || true
        wait "$tracer" 2>/dev/null || true
    done
done

python3 - "$out" "$tool" <<'EOF'
import json, os, re, sys

out = sys.argv[1]
TOOL = {"strace": "strace -c -f", "perf": "perf stat"}[sys.argv[2]]
KINDS = {
    "read": {"read", "recvfrom", "readv", "recvmsg", "recvmmsg"},
    "write": {"write", "writev", "sendto", "sendmsg", "sendmmsg"},
    "epoll_wait": {"epoll_wait", "epoll_pwait", "epoll_pwait2"},
}
ORDER = ["wsengine", "tungstenite", "fastwebsockets", "tokio-websockets", "node-ws", "python-websockets"]
rows = {}
for name in sorted(os.listdir(out)):
    stem, ext = os.path.splitext(name)
    if ext not in (".strace", ".perf"):
        continue
    point, server = stem.split("__", 1)
    try:
        with open(os.path.join(out, point + "__" + server + ".json")) as f:
            run = json.load(f)
    except (OSError, ValueError):
        print(f"NOTE: no load result for {point} {server}")
        continue
    calls, errors = {}, {}
    with open(os.path.join(out, name)) as f:
        for line in f:
            if ext == ".perf":
                # count,unit,syscalls:sys_enter_NAME,... (sys_exit_NAME: EAGAIN only);
                # the calls not named are the rest of raw_syscalls:sys_enter.
                m = re.match(r"^(\d+),[^,]*,(raw_)?syscalls:sys_(enter|exit)_?(\w*),", line)
                if m and m.group(2):
                    calls["(others)"] = int(m.group(1))
                elif m and int(m.group(1)):
                    (calls if m.group(3) == "enter" else errors)[m.group(4)] = int(m.group(1))
                continue
            # % time  seconds  usecs/call  calls  [errors]  syscall
            m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d+\s+)?(\w+)\s*$", line)
            if m and m.group(3) != "total":
                calls[m.group(3)] = int(m.group(1))
                errors[m.group(3)] = int(m.group(2) or 0)
    if "(others)" in calls:
        calls["(others)"] -= sum(n for s, n in calls.items() if s != "(others)")
    msgs = run.get("messages") or 0
    if not msgs:
        continue
    per = {k: sum(calls.get(s, 0) for s in v) / msgs for k, v in KINDS.items()}
    per["read_eagain"] = sum(errors.get(s, 0) for s in KINDS["read"]) / msgs
    per["other"] = sum(n for s, n in calls.items() if not any(s in v for v in KINDS.values())) / msgs
    per["total"] = sum(calls.values()) / msgs
    names = {k: "+".join(sorted(s for s in v if calls.get(s))) or "-" for k, v in KINDS.items()}
    rows.setdefault(point, []).append((server, msgs, run.get("messages_per_s"), per, names, (run.get("errors") or {}).get("total")))

for point, rs in rows.items():
    print(f"\n### system calls per echoed message: {point}\n")
    print(f"| server | echoes | echoes/s under {TOOL} | read | of them EAGAIN | write | epoll_wait | other | total | calls seen |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for server, msgs, rate, per, names, errs in sorted(rs, key=lambda r: ORDER.index(r[0]) if r[0] in ORDER else 99):
        seen = "; ".join(f"{k}: {v}" for k, v in names.items())
        flag = "" if not errs else f" ({errs} errors)"
        print(
            f"| {server}{flag} | {msgs:,} | {rate:,.0f} | {per['read']:.3f} | {per['read_eagain']:.3f} | {per['write']:.3f} "
            f"| {per['epoll_wait']:.3f} | {per['other']:.3f} | {per['total']:.3f} | {seen} |"
        )
print(f"\nCalls of every thread of the server process ({TOOL}), divided by the echoes in the window.")
EOF
