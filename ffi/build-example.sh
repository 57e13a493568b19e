#!/usr/bin/env bash
# Builds the C example ffi/examples/echo_server.c with `cc` against the static library
# (target/release/libwsengine_ffi.a of this crate), C99 with -Wall -Wextra -Werror.
#
#   bash ffi/build-example.sh [OUTPUT]     default OUTPUT: <target dir>/release/echo_server
#
# Environment: CC (default cc), CFLAGS (extra flags), WSENGINE_FFI_NO_CARGO=1 to skip
# `cargo build --release` (the library must then exist already).
set -euo pipefail
FFI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "${FFI_DIR}"

if [[ -z ${WSENGINE_FFI_NO_CARGO:-} ]]; then
    cargo build --release --lib
fi
target_dir="$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
lib="${target_dir}/release/libwsengine_ffi.a"
[[ -f ${lib} ]] || {
    echo "build-example.sh: ${lib} is missing" >&2
    exit 1
}
out="${1:-${target_dir}/release/echo_server}"
# The Rust standard library inside the archive needs libpthread, libdl and libm (part of
# libc on recent glibc; harmless there); cc links libgcc_s for unwinding by default.
# shellcheck disable=SC2086
"${CC:-cc}" -std=c99 -pedantic -Wall -Wextra -Werror -O2 -g ${CFLAGS:-} \
    -I "${FFI_DIR}/include" "${FFI_DIR}/examples/echo_server.c" "${lib}" \
    -lpthread -ldl -lm -o "${out}"
echo "${out}"
