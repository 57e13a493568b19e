#!/usr/bin/env bash
# Checks that the committed C header, ffi/include/wsengine.h, is what cbindgen generates
# from the crate now (CI fails on a difference). With --write, regenerates it instead.
#
#   bash ffi/check-header.sh            check
#   bash ffi/check-header.sh --write    regenerate include/wsengine.h
#
# Needs cbindgen (`cargo install cbindgen --locked`); set WSENGINE_INSTALL_CBINDGEN=1 to
# install it when missing. The header was generated with cbindgen 0.29.x: another
# version may lay it out differently, which this check reports as a difference.
set -euo pipefail
FFI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "${FFI_DIR}"
HEADER=include/wsengine.h
CBINDGEN_VERSION=0.29.4

if ! command -v cbindgen >/dev/null 2>&1; then
    if [[ -n ${WSENGINE_INSTALL_CBINDGEN:-} ]]; then
        cargo install cbindgen --locked --version "${CBINDGEN_VERSION}"
    else
        echo "check-header.sh: cbindgen is not installed (cargo install cbindgen --locked)" >&2
        exit 1
    fi
fi
have="$(cbindgen --version | awk '{print $2}')"
if [[ ${have%.*} != "${CBINDGEN_VERSION%.*}" ]]; then
    echo "check-header.sh: warning: cbindgen ${have}, the header was made with ${CBINDGEN_VERSION}" >&2
fi

generate() { cbindgen --quiet --config cbindgen.toml --crate wsengine-ffi --output "$1"; }

if [[ ${1:-} == --write ]]; then
    generate "${HEADER}"
    echo "wrote ffi/${HEADER}"
    exit 0
fi
tmp="$(mktemp)"
trap 'rm -f "${tmp}"' EXIT
generate "${tmp}"
if ! diff -u "${HEADER}" "${tmp}"; then
    echo "check-header.sh: ffi/${HEADER} is out of date: run bash ffi/check-header.sh --write" >&2
    exit 1
fi
echo "ffi/${HEADER} is up to date"
