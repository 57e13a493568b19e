#!/usr/bin/env bash
# Builds every C test in ffi/tests/c/ with cc against the static library
# (target/release/libwsengine_ffi.a) and the committed header, C99 with
# -Wall -Wextra -Werror, and runs each: a nonzero exit fails the script.
#
#   bash ffi/tests/c/run.sh
#
# Environment: CC (default cc), CFLAGS (extra flags), WSENGINE_FFI_NO_CARGO=1 to skip
# `cargo build --release --lib` (the library must then exist already, e.g. after
# ffi/build-example.sh), WSENGINE_FFI_PROFILE=debug to use the debug library instead.
set -euo pipefail
TESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FFI_DIR="$(cd "${TESTS_DIR}/../.." && pwd)"
cd "${FFI_DIR}"

profile="${WSENGINE_FFI_PROFILE:-release}"
if [[ -z ${WSENGINE_FFI_NO_CARGO:-} ]]; then
    if [[ ${profile} == debug ]]; then cargo build --lib; else cargo build --release --lib; fi
fi
target_dir="$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
lib="${target_dir}/${profile}/libwsengine_ffi.a"
[[ -f ${lib} ]] || {
    echo "run.sh: ${lib} is missing" >&2
    exit 1
}
out_dir="${target_dir}/${profile}/c-tests"
mkdir -p "${out_dir}"
for src in "${TESTS_DIR}"/*.c; do
    name="$(basename "${src}" .c)"
    # shellcheck disable=SC2086
    "${CC:-cc}" -std=c99 -pedantic -Wall -Wextra -Werror -O1 -g ${CFLAGS:-} \
        -I "${FFI_DIR}/include" "${src}" "${lib}" -lpthread -ldl -lm -o "${out_dir}/${name}"
    "${out_dir}/${name}"
done
