#!/usr/bin/env bash
# Runs Autobahn|Testsuite against wsengine in one direction and judges the result.
#
#   bash autobahn/run.sh server   wstest (fuzzingclient) tests `wsengine serve`
#   bash autobahn/run.sh client   `wsengine autobahn-client` is tested by wstest (fuzzingserver)
#   bash autobahn/run.sh server-tokio   as `server`, against `wsengine serve --runtime tokio`
#                                 (the tokio adapter, wsengine-tokio)
#   bash autobahn/run.sh server-tls     as `server` over wss://, against `wsengine serve
#                                 --tls-cert ... --tls-key ...`; sections 1-10 by default
#   bash autobahn/run.sh server-tokio-tls   as `server-tls`, with --runtime tokio
#   bash autobahn/run.sh client-tls     as `client` over wss://: wstest's fuzzingserver
#                                 serves TLS, `wsengine autobahn-client --ca ...` connects;
#                                 sections 1-10 by default
#
# The TLS directions make a throwaway CA and a server certificate for localhost and
# 127.0.0.1 (ECDSA P-256, openssl) in a temporary directory removed on exit; nothing is
# committed. wstest's TLS client (Twisted's ClientContextFactory) verifies nothing and
# sends no SNI; wsengine's client verifies the certificate against that CA.
#
# Builds the release binary, installs wstest (autobahn/install.sh), runs the direction on
# 127.0.0.1 with a port picked at run time, stops every process it started (process groups,
# trap on EXIT), and summarises autobahn/reports/<server|client>/index.json into summary.md.
# Exits non-zero on any case that is not OK/INFORMATIONAL (or whose close behaviour is not),
# on a case or section that did not run, or on a run that crashed or timed out.
#
# Environment:
#   WSENGINE_BIN=path          test this executable instead of building target/release/wsengine
#   AUTOBAHN_TIMEOUT=600       seconds for the test run of a direction
#   AUTOBAHN_BUILD_TIMEOUT=1800, AUTOBAHN_INSTALL_TIMEOUT=1800   seconds for those steps
#   AUTOBAHN_MIN_CASES=250     fewer judged cases than this fails the run (301, all of
#                              sections 1-10, for the TLS directions)
#   AUTOBAHN_WSTEST=docker     run wstest from the crossbario/autobahn-testsuite image
#   AUTOBAHN_DOCKER_IMAGE=...  that image (default crossbario/autobahn-testsuite)
#
# Testing another server (server direction only; nothing is built):
#   WSENGINE_SERVER_CMD='cmd ... {addr}'   the server to start instead of `wsengine serve`,
#                              run by bash; {addr} becomes 127.0.0.1:PORT, {port} PORT
#                              (e.g. the C ABI's ffi/examples/echo_server)
#   WSENGINE_SERVER_STOP_CHECK=1   after the run, stop the server with SIGTERM and fail
#                              unless it exits 0 within 120 s (e.g. valgrind's verdict)
#   AUTOBAHN_CASES='1.*,2.*'   run only these case patterns (replaces the spec's "cases";
#                              lower AUTOBAHN_MIN_CASES to match; every direction; the TLS
#                              directions default to '1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*')
#   AUTOBAHN_REPORT_NAME=name  write autobahn/reports/<name> (default: the direction, or
#                              server-cmd with WSENGINE_SERVER_CMD)
set -euo pipefail

usage() {
    echo "usage: bash autobahn/run.sh server|client|server-tokio|server-tls|server-tokio-tls|client-tls" >&2
    exit 2
}
[[ $# -eq 1 && ($1 == server || $1 == client || $1 == server-tokio || $1 == server-tls ||
    $1 == server-tokio-tls || $1 == client-tls) ]] || usage
MODE=$1
# `server-tokio` is the server direction against the tokio host: more arguments for
# `wsengine serve`, its own report directory. The -tls directions are `server` and
# `client` over wss:// (sections 1-10 unless AUTOBAHN_CASES says otherwise).
DEFAULT_REPORT=${MODE}
DIRECTION=${MODE} # as given, for the log
SERVE_ARGS=()
TLS=0
SECTIONS_1_10='1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*' # 301 cases, no permessage-deflate
case ${MODE} in
server-tokio)
    MODE=server
    SERVE_ARGS=(--runtime tokio)
    ;;
server-tls | server-tokio-tls | client-tls)
    if [[ ${MODE} == server-tokio-tls ]]; then
        SERVE_ARGS=(--runtime tokio)
    fi
    MODE=${MODE%-tls}
    MODE=${MODE%-tokio}
    TLS=1
    AUTOBAHN_CASES="${AUTOBAHN_CASES:-${SECTIONS_1_10}}"
    AUTOBAHN_MIN_CASES="${AUTOBAHN_MIN_CASES:-301}"
    ;;
esac

AB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${AB_DIR}/.." && pwd)"
cd "${ROOT}"

TIMEOUT="${AUTOBAHN_TIMEOUT:-600}"
BUILD_TIMEOUT="${AUTOBAHN_BUILD_TIMEOUT:-1800}"
INSTALL_TIMEOUT="${AUTOBAHN_INSTALL_TIMEOUT:-1800}"
MIN_CASES="${AUTOBAHN_MIN_CASES:-250}"
AGENT=wsengine
SERVER_CMD="${WSENGINE_SERVER_CMD:-}"
[[ -z ${SERVER_CMD} || ${DEFAULT_REPORT} == server ]] || {
    echo "WSENGINE_SERVER_CMD applies to the server direction only" >&2
    exit 2
}
if [[ -n ${SERVER_CMD} ]]; then
    REPORT_NAME="${AUTOBAHN_REPORT_NAME:-server-cmd}"
else
    REPORT_NAME="${AUTOBAHN_REPORT_NAME:-${DEFAULT_REPORT}}"
fi
[[ ${REPORT_NAME} =~ ^[A-Za-z0-9._-]+$ ]] || {
    echo "AUTOBAHN_REPORT_NAME must be a plain file name" >&2
    exit 2
}
OUT="${AB_DIR}/reports/${REPORT_NAME}"
if [[ ${MODE} == server ]]; then
    SPEC="${AB_DIR}/fuzzingclient.json"
else
    SPEC="${AB_DIR}/fuzzingserver.json"
fi
CFG="${OUT}/wstest-config.json" # the effective spec: SPEC with the port and outdir filled in

log() { printf '[autobahn %s] %s\n' "${DIRECTION}" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- Process bookkeeping: every background process leads its own group; all die on exit ----
PGIDS=()
CONTAINER=""
TLS_DIR="" # the throwaway CA, certificate and key of a TLS direction
stop_all() {
    local pid i alive
    for pid in "${PGIDS[@]}"; do kill -TERM -- "-${pid}" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pid in "${PGIDS[@]}"; do kill -0 -- "-${pid}" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PGIDS[@]}"; do kill -KILL -- "-${pid}" 2>/dev/null || true; done
    for pid in "${PGIDS[@]}"; do wait "${pid}" 2>/dev/null || true; done
    PGIDS=()
    if [[ -n ${CONTAINER} ]]; then
        docker rm -f "${CONTAINER}" >/dev/null 2>&1 || true
        CONTAINER=""
    fi
}
on_exit() {
    local rc=$?
    trap - EXIT INT TERM HUP
    stop_all
    [[ -z ${TLS_DIR} ]] || rm -rf "${TLS_DIR}"
    exit "${rc}"
}
trap on_exit EXIT
trap 'log "interrupted (SIGINT)"; exit 130' INT
trap 'log "terminated (SIGTERM)"; exit 143' TERM
trap 'log "hung up (SIGHUP)"; exit 129' HUP

# start_bg LOG CMD...: run CMD in a new session (so its whole process group can be killed);
# sets BG_PID, which is also the group id.
BG_PID=""
start_bg() {
    local logfile=$1
    shift
    setsid "$@" >"${logfile}" 2>&1 </dev/null &
    BG_PID=$!
    PGIDS+=("${BG_PID}")
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID SECONDS: until PORT accepts connections; fails if PID exits first.
wait_port() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        port_open "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

show_log() { # show_log NAME FILE: the end of a log, for a failed step
    [[ -s $2 ]] || return 0
    log "last lines of $1 ($2):"
    tail -n 25 "$2" | cut -c1-300 | sed 's/^/    /' >&2
}

# --- 1. The binary ------------------------------------------------------------------------
if [[ -n ${SERVER_CMD} ]]; then
    BIN=""
    log "testing the server command: ${SERVER_CMD} (WSENGINE_SERVER_CMD; nothing built)"
elif [[ -n ${WSENGINE_BIN:-} ]]; then
    BIN="${WSENGINE_BIN}"
    [[ -x ${BIN} ]] || die "WSENGINE_BIN=${BIN} is not executable"
    log "testing ${BIN} (WSENGINE_BIN; nothing built)"
else
    # The target dir, as cargo itself reports it.
    target_dir="$(cargo metadata --no-deps --format-version 1 |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    build=(cargo build --release -p wsengine-cli --bin wsengine)
    log "building: ${build[*]}"
    timeout -k 10 "${BUILD_TIMEOUT}" "${build[@]}" || die "build failed or timed out"
    BIN="${target_dir}/release/wsengine"
fi

# --- 2. wstest ------------------------------------------------------------------------------
timeout -k 10 "${INSTALL_TIMEOUT}" bash "${AB_DIR}/install.sh" </dev/null ||
    die "autobahn/install.sh failed or timed out"
if [[ ${AUTOBAHN_WSTEST:-venv} == docker ]]; then
    # Alternative path: the official image, host networking, autobahn/ mounted at its own
    # path so the spec and report paths are the same inside and out.
    CONTAINER="wsengine-autobahn-${MODE}-$$"
    WSTEST=(docker run --rm --init --name "${CONTAINER}" --network host
        -v "${AB_DIR}:${AB_DIR}" -w "${AB_DIR}"
        "${AUTOBAHN_DOCKER_IMAGE:-crossbario/autobahn-testsuite}" wstest)
else
    WSTEST=("${AB_DIR}/.cache/venv/bin/wstest")
fi
export PYTHONUNBUFFERED=1 # wstest's progress reaches its log even when it is killed

# --- 3. The effective spec ------------------------------------------------------------------
rm -rf "${OUT}"
mkdir -p "${OUT}"
SCHEME=ws
if ((TLS)); then
    # A throwaway CA and a server certificate signed by it (localhost, 127.0.0.1), made
    # here for this run only and removed on exit.
    SCHEME=wss
    command -v openssl >/dev/null || die "the TLS directions need openssl (apt-get install openssl)"
    TLS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/wsengine-autobahn-tls.XXXXXX")"
    CA_PEM="${TLS_DIR}/ca.pem"
    CERT_PEM="${TLS_DIR}/server.pem"
    KEY_PEM="${TLS_DIR}/server.key"
    printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature \
        extendedKeyUsage=serverAuth subjectAltName=DNS:localhost,IP:127.0.0.1 >"${TLS_DIR}/server.ext"
    {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj "/CN=wsengine Autobahn throwaway CA" -keyout "${TLS_DIR}/ca.key" -out "${CA_PEM}" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -subj "/CN=localhost" -keyout "${KEY_PEM}" -out "${TLS_DIR}/server.csr" &&
            openssl x509 -req -days 2 -in "${TLS_DIR}/server.csr" -CA "${CA_PEM}" \
                -CAkey "${TLS_DIR}/ca.key" -CAcreateserial -CAserial "${TLS_DIR}/ca.srl" \
                -extfile "${TLS_DIR}/server.ext" -out "${CERT_PEM}"
    } >"${TLS_DIR}/openssl.log" 2>&1 || {
        show_log openssl "${TLS_DIR}/openssl.log"
        die "could not make the throwaway CA and certificate with openssl"
    }
    log "throwaway CA and localhost/127.0.0.1 certificate in ${TLS_DIR} (removed on exit)"
fi
PORT="$(free_port)"
python3 - "${SPEC}" "${CFG}" "${MODE}" "${PORT}" "${OUT}" "${AUTOBAHN_CASES:-}" "${SCHEME}" \
    "${CERT_PEM:-}" "${KEY_PEM:-}" <<'EOF'
import json, re, sys
src, dst, mode, port, outdir, cases, scheme, cert, key = sys.argv[1:]
with open(src) as f:
    spec = json.load(f)
if cases.strip():
    spec["cases"] = [c for c in re.split(r"[\s,]+", cases) if c]
url = "%s://127.0.0.1:%s" % (scheme, port)
if mode == "server":
    for server in spec["servers"]:
        server["url"] = url
else:
    spec["url"] = url
    if cert:
        # The fuzzingserver serves TLS with these (wstest's -k/-c are not passed to it).
        spec["cert"] = cert
        spec["key"] = key
spec["outdir"] = outdir
with open(dst, "w") as f:
    json.dump(spec, f, indent=2)
EOF
if [[ ${MODE} == server ]]; then
    AGENT="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["servers"][0]["agent"])' "${CFG}")"
fi

# --- 4. The run -----------------------------------------------------------------------------
status=0
started=${SECONDS}
if [[ ${MODE} == server ]]; then
    if [[ -n ${SERVER_CMD} ]]; then
        SERVER_DESC="the server command"
        cmd="${SERVER_CMD//\{addr\}/127.0.0.1:${PORT}}"
        cmd="${cmd//\{port\}/${PORT}}"
        # exec: the command itself leads the process group and gets the signals.
        start_bg "${OUT}/wsengine.log" bash -c "exec ${cmd}"
    else
        SERVER_DESC="wsengine serve${SERVE_ARGS[*]:+ ${SERVE_ARGS[*]}}"
        if ((TLS)); then
            SERVER_DESC+=" --tls-cert server.pem --tls-key server.key"
            SERVE_ARGS+=(--tls-cert "${CERT_PEM}" --tls-key "${KEY_PEM}")
        fi
        start_bg "${OUT}/wsengine.log" "${BIN}" serve --listen "127.0.0.1:${PORT}" "${SERVE_ARGS[@]}"
    fi
    peer_pid=${BG_PID}
    wait_port "${PORT}" "${peer_pid}" 30 || {
        show_log "${SERVER_DESC}" "${OUT}/wsengine.log"
        die "${SERVER_DESC} did not accept connections on 127.0.0.1:${PORT}"
    }
    log "${SERVER_DESC} on ${SCHEME}://127.0.0.1:${PORT}; running wstest -m fuzzingclient (limit ${TIMEOUT} s)"
    start_bg "${OUT}/wstest.log" timeout -k 10 "${TIMEOUT}" "${WSTEST[@]}" -m fuzzingclient -s "${CFG}"
    rc=0
    wait "${BG_PID}" || rc=$?
    if ((rc == 124 || rc == 137)); then
        log "wstest timed out after ${TIMEOUT} s"
        status=1
    elif ((rc != 0)); then
        log "wstest exited with status ${rc}"
        status=1
    fi
    if ! kill -0 "${peer_pid}" 2>/dev/null; then
        prc=0
        wait "${peer_pid}" || prc=$?
        log "${SERVER_DESC} exited during the run (status ${prc})"
        status=1
    elif [[ -n ${WSENGINE_SERVER_STOP_CHECK:-} ]]; then
        # A clean shutdown on SIGTERM must exit 0 (under valgrind: no errors, no leaks).
        kill -TERM "${peer_pid}" 2>/dev/null || true
        for ((i = 0; i < 1200; i++)); do
            kill -0 "${peer_pid}" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "${peer_pid}" 2>/dev/null; then
            log "${SERVER_DESC} did not exit within 120 s of SIGTERM"
            status=1
        else
            prc=0
            wait "${peer_pid}" || prc=$?
            log "${SERVER_DESC} exited with status ${prc} on SIGTERM"
            ((prc == 0)) || status=1
        fi
    fi
else
    start_bg "${OUT}/wstest.log" timeout -k 10 "$((TIMEOUT + 60))" \
        "${WSTEST[@]}" -m fuzzingserver -s "${CFG}" -u 0
    peer_pid=${BG_PID}
    wait_port "${PORT}" "${peer_pid}" 60 || {
        show_log "wstest" "${OUT}/wstest.log"
        die "wstest -m fuzzingserver did not accept connections on 127.0.0.1:${PORT}"
    }
    CLIENT_ARGS=(--server "${SCHEME}://127.0.0.1:${PORT}" --agent "${AGENT}")
    if ((TLS)); then
        CLIENT_ARGS+=(--ca "${CA_PEM}")
    fi
    log "wstest fuzzingserver on ${SCHEME}://127.0.0.1:${PORT}; running wsengine autobahn-client ${CLIENT_ARGS[*]} (limit ${TIMEOUT} s)"
    start_bg "${OUT}/wsengine.log" timeout -k 10 "${TIMEOUT}" "${BIN}" autobahn-client "${CLIENT_ARGS[@]}"
    rc=0
    wait "${BG_PID}" || rc=$?
    if ((rc == 124 || rc == 137)); then
        log "wsengine autobahn-client timed out after ${TIMEOUT} s"
        status=1
    elif ((rc != 0)); then
        log "wsengine autobahn-client exited with status ${rc}"
        status=1
    fi
    # The reports are written while /updateReports is served; allow a moment regardless.
    for ((i = 0; i < 50; i++)); do
        [[ -s ${OUT}/index.json ]] && break
        sleep 0.1
    done
    if ! kill -0 "${peer_pid}" 2>/dev/null; then
        log "wstest -m fuzzingserver exited before the end of the run"
        status=1
    fi
fi
elapsed=$((SECONDS - started))
stop_all
log "run took ${elapsed} s"

# --- 5. The verdict -------------------------------------------------------------------------
if [[ ! -s ${OUT}/index.json ]]; then
    show_log "wstest" "${OUT}/wstest.log"
    show_log "wsengine" "${OUT}/wsengine.log"
    die "no report: ${OUT}/index.json was not written"
fi
if [[ -n ${SERVER_CMD} ]]; then
    title="Server: wstest -m fuzzingclient against \`${SERVER_CMD}\`"
elif [[ ${MODE} == server ]]; then
    title="Server: wstest -m fuzzingclient against ${SERVER_DESC}"
else
    title="Client: wsengine autobahn-client against wstest -m fuzzingserver"
fi
if ((TLS)); then
    title="${title} over wss:// (TLS)"
fi
if ((status != 0)); then
    show_log "wstest" "${OUT}/wstest.log"
    show_log "wsengine" "${OUT}/wsengine.log"
fi
log "report: ${OUT}/index.html, summary: ${OUT}/summary.md"
# The summary's last line is the plain "autobahn-<mode>: N passed, N failed".
src=0
python3 "${AB_DIR}/summarize.py" "${OUT}/index.json" --config "${CFG}" --agent "${AGENT}" \
    --markdown "${OUT}/summary.md" --min-cases "${MIN_CASES}" --title "${title}" --label "autobahn-${REPORT_NAME}" || src=$?
if ((status != 0 && src == 0)); then
    log "FAILED: the run itself failed (see above), although its report passes"
fi
((status == 0 && src == 0)) || exit 1
