#!/bin/sh
# Builds the release binary and runs the two-daemon sync benchmark (see bench.py).
set -eu
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clearskies-target}"
cargo build --release --locked --quiet
exec python3 benches/sync/bench.py "$CARGO_TARGET_DIR/release/clearskies" "$@"
