#!/usr/bin/env bash
# The hostile-load suite of issue #14 (README.md beside this file): builds the release
# `wsengine` server and this crate, then runs the attacks against the server.
#
# Usage: benches/hostile/run.sh [--short] [--only NAME]... [--server-arg ARG]... [--no-check]
# (--short is the CI version, about 1.5 minutes; without it, about 2.5 minutes.)
# Exit status: non-zero if a target is missed (unless --no-check).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TERM_COLOR=never

(cd "$root" && cargo build --release -p wsengine-cli --bin wsengine)
server="${CARGO_TARGET_DIR:-$root/target}/release/wsengine"

# The idle attack holds 10,000 connections: the suite raises its own soft descriptor
# limit to the hard one (and the servers it starts inherit it); say so if that is low.
hard="$(ulimit -Hn)"
if [[ "$hard" != unlimited && "$hard" -lt 10300 ]]; then
    echo "note: the hard descriptor limit is $hard; the idle attack will scale down" >&2
fi

exec cargo run --release --quiet --manifest-path "$here/Cargo.toml" -- --server "$server" "$@"
