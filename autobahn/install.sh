#!/usr/bin/env bash
# Installs wstest (Autobahn|Testsuite 25.10.1, Python 2.7 only) into autobahn/.cache/.
#
# Idempotent, non-interactive (CI=true, no stdin), safe to run concurrently (flock), and a
# no-op taking milliseconds once installed. See autobahn/README.md for what it does.
#
# Environment:
#   AUTOBAHN_PYTHON27=/path/python2.7  use this interpreter (must have its C headers)
#   AUTOBAHN_PY27_APT=1                skip the pyenv interpreter, take the apt (bullseye) route
#   AUTOBAHN_WSTEST=docker             use the crossbario/autobahn-testsuite image instead
#   AUTOBAHN_DOCKER_IMAGE=...          image for that route (default crossbario/autobahn-testsuite)
set -euo pipefail

AB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "${AB_DIR}/.."

CACHE="${AB_DIR}/.cache"
VENV="${CACHE}/venv"
PREFIX="${CACHE}/bootstrap"
WHEELS="${CACHE}/wheels"
STAMP="${VENV}/.wsengine-installed"

# Bootstrap wheels for Python 2.7, fetched with the machine's python3 pip.
BOOTSTRAP_WHEELS=(pip==20.3.4 setuptools==44.0.0 wheel==0.37.1 virtualenv==20.15.1)
# What wstest needs on Python 2.7; autobahntestsuite itself goes in with --no-deps, because
# its autobahn[accelerate] extra does not build on Python 2.
WSTEST_DEPS=(
    setuptools==44.0.0 txaio==2.1.0 incremental==16.10.1 pyOpenSSL==19.1.0
    cryptography==3.3.2 Twisted==19.10.0 zope.interface==4.6.0 jinja2==2.11.3
    markupsafe==1.1.1 Werkzeug==1.0.1 klein==17.10.0 service_identity==18.1.0
    unittest2==1.1.0 six==1.16.0 autobahn==0.10.9
)
WSTEST_PKG=autobahntestsuite==25.10.1
WSACCEL=wsaccel==0.6.2 # 3-6x faster masking/UTF-8 in wstest, identical verdicts
# Transitive dependencies pinned too, so a new upload can never change what gets installed.
CONSTRAINTS="${AB_DIR}/constraints-py27.txt"

log() { printf 'autobahn/install.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- Alternative: the official docker image (only when asked for and docker works) -------
if [[ ${AUTOBAHN_WSTEST:-venv} == docker ]]; then
    image="${AUTOBAHN_DOCKER_IMAGE:-crossbario/autobahn-testsuite}"
    docker info >/dev/null 2>&1 || die "AUTOBAHN_WSTEST=docker but 'docker info' fails"
    docker image inspect "${image}" >/dev/null 2>&1 || docker pull "${image}"
    docker run --rm "${image}" wstest --help >/dev/null || die "wstest does not run in ${image}"
    log "using docker image ${image}"
    exit 0
fi

# --- Native: a Python 2.7 virtualenv under autobahn/.cache/venv -------------------------
mkdir -p "${CACHE}"
exec 9>"${CACHE}/install.lock"
flock -w 1800 9 || die "timed out waiting for ${CACHE}/install.lock"

# Never let the user's site-packages or a stray PYTHONPATH leak into the Python 2 steps.
export PYTHONNOUSERSITE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_NO_PYTHON_VERSION_WARNING=1
unset PYTHONPATH PYTHONHOME PIP_REQUIRE_VIRTUALENV PIP_USER VIRTUAL_ENV

py27_ok() { # usable = runs as 2.7 and has Python.h (Twisted, scandir and wsaccel compile C)
    [[ -x $1 ]] && "$1" -c '
import os, sys
from distutils.sysconfig import get_python_inc
assert sys.version_info[:2] == (2, 7)
assert os.path.exists(os.path.join(get_python_inc(), "Python.h"))
' >/dev/null 2>&1
}

find_python27() {
    local candidates=()
    if [[ -n ${AUTOBAHN_PYTHON27:-} ]]; then
        candidates=("${AUTOBAHN_PYTHON27}")
    else
        if [[ ${AUTOBAHN_PY27_APT:-0} != 1 ]]; then
            candidates+=(
                "${PYENV_ROOT:-${HOME:-/root}/.pyenv}/versions/2.7.18/bin/python2.7"
                /root/.pyenv/versions/2.7.18/bin/python2.7
            )
        fi
        candidates+=(/usr/bin/python2.7)
    fi
    local p
    for p in "${candidates[@]}"; do
        if py27_ok "${p}"; then
            printf '%s\n' "${p}"
            return 0
        fi
    done
    return 1
}

# Debian 12 has no python2: add the bullseye suite (same URIs and keyring as bookworm),
# pinned low so it never replaces a bookworm package, and install python2.7 from it.
install_python27_apt() {
    [[ $(id -u) -eq 0 ]] || die "no Python 2.7 found and not root: cannot apt-get it (set AUTOBAHN_PYTHON27)"
    local sources=/etc/apt/sources.list.d/debian.sources
    local uris=http://deb.debian.org/debian
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    if [[ -r ${sources} ]]; then
        local found
        found="$(awk -v want=bookworm '
            BEGIN { RS = ""; FS = "\n" }
            {
                u = ""; k = ""; hit = 0
                for (i = 1; i <= NF; i++) {
                    l = $i
                    if (l ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", l); u = l }
                    else if (l ~ /^Signed-By:/) { sub(/^Signed-By:[ \t]*/, "", l); k = l }
                    else if (l ~ /^Suites:/) {
                        sub(/^Suites:[ \t]*/, "", l)
                        n = split(l, s, /[ \t]+/)
                        for (j = 1; j <= n; j++) if (s[j] == want) hit = 1
                    }
                }
                if (hit && u != "") { print u; print k; exit }
            }' "${sources}")"
        if [[ -n ${found} ]]; then
            uris="$(sed -n 1p <<<"${found}")"
            local k
            k="$(sed -n 2p <<<"${found}")"
            [[ -n ${k} ]] && keyring="${k}"
        fi
    fi
    log "no Python 2.7 with headers: installing python2.7 from Debian bullseye (${uris})"
    cat >/etc/apt/sources.list.d/wsengine-bullseye.sources <<EOF
# Added by wsengine autobahn/install.sh: python2.7 for wstest (Autobahn|Testsuite).
Types: deb
URIs: ${uris}
Suites: bullseye
Components: main
Signed-By: ${keyring}
EOF
    cat >/etc/apt/preferences.d/wsengine-bullseye.pref <<'EOF'
# Added by wsengine autobahn/install.sh: bullseye only for what bookworm lacks (python2.7).
Package: *
Pin: release n=bullseye
Pin-Priority: 100
EOF
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python2.7 python2.7-dev >/dev/null
}

PY27="$(find_python27)" || {
    [[ -z ${AUTOBAHN_PYTHON27:-} ]] || die "AUTOBAHN_PYTHON27=${AUTOBAHN_PYTHON27} is not a Python 2.7 with headers"
    install_python27_apt
    PY27="$(find_python27)" || die "python2.7 from bullseye is not usable"
}

# The stamp records everything that decides the result; any change rebuilds from scratch.
fingerprint="$(
    printf '%s\n' "${PY27}" "$("${PY27}" -c 'import sys; print(sys.version)')" "${VENV}" \
        "${BOOTSTRAP_WHEELS[@]}" "${WSTEST_DEPS[@]}" "${WSTEST_PKG}" "${WSACCEL}"
    cat "${CONSTRAINTS}"
)"
if [[ -f ${STAMP} && -x ${VENV}/bin/python && -x ${VENV}/bin/wstest ]] &&
    [[ "$(cat "${STAMP}")" == "${fingerprint}" ]]; then
    exit 0 # already installed
fi

start=${SECONDS}
log "installing wstest into ${VENV} with ${PY27}"
rm -rf "${VENV}" "${PREFIX}"
mkdir -p "${WHEELS}"

# 1. pip, setuptools, wheel and virtualenv wheels for 2.7, downloaded by python3's pip.
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --python-version 2.7 --only-binary=:all: -d "${WHEELS}" "${BOOTSTRAP_WHEELS[@]}"

# 2. pip runs straight from its wheel to install itself, setuptools and wheel into a prefix;
#    --ignore-installed keeps it from touching the base interpreter's own pip/setuptools.
pip_whl="$(find "${WHEELS}" -maxdepth 1 -name 'pip-20.3.4-*.whl' | head -n 1)"
[[ -n ${pip_whl} ]] || die "pip 20.3.4 wheel missing from ${WHEELS}"
"${PY27}" "${pip_whl}/pip" install --quiet --no-warn-script-location --ignore-installed \
    --no-index --find-links "${WHEELS}" --prefix "${PREFIX}" \
    pip==20.3.4 setuptools==44.0.0 wheel==0.37.1
site="$(find "${PREFIX}" -maxdepth 5 -type d -path '*-packages/pip' | head -n 1)"
[[ -n ${site} ]] || die "pip did not land in ${PREFIX}"
site="$(dirname "${site}")"

# 3. virtualenv into the same prefix (its dependency scandir is source-only: it builds with
#    the setuptools just installed there).
PYTHONPATH="${site}" "${PY27}" -m pip install --quiet --no-warn-script-location \
    --ignore-installed --find-links "${WHEELS}" --prefix "${PREFIX}" \
    -c "${CONSTRAINTS}" virtualenv==20.15.1

# 4. The virtualenv, seeded from virtualenv's embedded wheels (no download).
PYTHONPATH="${site}" "${PY27}" -m virtualenv --quiet --no-periodic-update \
    --app-data "${CACHE}/virtualenv-app-data" -p "${PY27}" "${VENV}"

# 5. wstest and its dependencies.
vpip=("${VENV}/bin/python" -m pip install --quiet --no-warn-script-location -c "${CONSTRAINTS}")
"${vpip[@]}" "${WSTEST_DEPS[@]}"
"${vpip[@]}" --no-deps "${WSTEST_PKG}"
"${vpip[@]}" "${WSACCEL}"

# 6. Verify: the command runs and both modes we use are there; wsaccel is importable.
help="$("${VENV}/bin/wstest" --help 2>&1)" || die "wstest --help failed: ${help}"
grep -q fuzzingclient <<<"${help}" || die "wstest --help lists no fuzzingclient mode"
"${VENV}/bin/python" -c 'import wsaccel, autobahn, autobahntestsuite' ||
    die "wstest modules do not import"

printf '%s\n' "${fingerprint}" >"${STAMP}"
log "installed $("${VENV}/bin/python" -c 'import autobahntestsuite as a; print("autobahntestsuite " + a.__version__)' 2>/dev/null || echo wstest) in $((SECONDS - start)) s"
