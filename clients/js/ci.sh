#!/usr/bin/env bash
# What CI runs for the JavaScript client (clients/js): the Node suite (test/*.test.js) and the
# browser suite (test/browser/: the client's browser-only parts and the demos, in Debian's
# Chromium, headless). Run as root on Debian 12 with Node 20 and npm, from anywhere:
#
#   bash clients/js/ci.sh
#
# It installs Chromium and redis-server with apt when missing, builds the hub
# (target/debug/wsengine) unless WSENGINE_BIN names one, installs the locked npm packages
# (npm ci), and runs each suite under a time limit in a process group of its own, which is
# killed afterwards: no hub or test process outlives the script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
NODE_SUITE_LIMIT="${NODE_SUITE_LIMIT:-600}"       # seconds
BROWSER_SUITE_LIMIT="${BROWSER_SUITE_LIMIT:-420}" # seconds

step() { printf '\n=== %s\n' "$*"; }

groups=()
cleanup() {
    local group live=()
    for group in "${groups[@]}"; do
        kill -0 -- "-${group}" 2>/dev/null && live+=("${group}")
    done
    (( ${#live[@]} > 0 )) || return 0
    # TERM first: the test processes then close their browsers (Playwright does on SIGTERM)
    # and their hubs; KILL whatever is left.
    for group in "${live[@]}"; do kill -TERM -- "-${group}" 2>/dev/null || true; done
    sleep 3
    for group in "${live[@]}"; do kill -KILL -- "-${group}" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs "$@" under `timeout` (which makes itself the leader of a new process group and, when
# time is up, signals the whole group), then kills whatever is left in that group.
bounded() {
    local limit="$1"
    shift
    local status=0
    timeout --kill-after=15 "${limit}" "$@" &
    local pid=$!
    groups+=("${pid}")
    wait "${pid}" || status=$?
    kill -KILL -- "-${pid}" 2>/dev/null || true
    if (( status == 124 || status == 137 )); then
        echo "timed out after ${limit} s: $*" >&2
    fi
    return "${status}"
}

step "chromium and redis-server"
# test/cluster.test.js runs hub processes on a real Redis (each test starts its own
# redis-server on a free port, without persistence, and stops it).
missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
if (( ${#missing[@]} > 0 )); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    # The package's own service (port 6379) is not used: stop it if the install started it.
    if [[ " ${missing[*]} " == *" redis-server "* ]]; then
        service redis-server stop >/dev/null 2>&1 || true
    fi
fi
/usr/bin/chromium --version 2>/dev/null | head -n 1
redis-server --version
node --version

step "the hub"
if [[ -n "${WSENGINE_BIN:-}" ]]; then
    test -x "${WSENGINE_BIN}" || { echo "WSENGINE_BIN=${WSENGINE_BIN} is not executable" >&2; exit 1; }
else
    (cd "${root}" && cargo build --quiet -p wsengine-cli --bin wsengine)
    export WSENGINE_BIN="${root}/target/debug/wsengine"
fi
echo "${WSENGINE_BIN}"

step "npm ci"
cd "${here}"
npm ci --no-audit --no-fund

# Both suites run; the script fails if either did.
failed=()
step "the Node suite (test/*.test.js)"
bounded "${NODE_SUITE_LIMIT}" node --test test/*.test.js || failed+=("the Node suite")

step "the browser suite (test/browser/)"
bounded "${BROWSER_SUITE_LIMIT}" node --test test/browser/ || failed+=("the browser suite")

if (( ${#failed[@]} > 0 )); then
    printf '\nfailed: %s\n' "${failed[*]}" >&2
    exit 1
fi
