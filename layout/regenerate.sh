#!/bin/sh
# Makes layout/clearskies.order again, for this toolchain and these sources (README.md here).
# Needs valgrind; takes some minutes. Then rebuild: build.rs links with the new order.
set -eu
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
CLEARSKIES_LINK_MAP="$work/clearskies.map" cargo build --release --locked --bins
cp "$target/release/clearskies" "$target/release/clearskies-monitor" "$work/"
python3 layout/trace.py "$work/clearskies" "$work/traces"
python3 layout/order.py "$work/clearskies.map" layout/clearskies.order "$work"/traces/callgrind.*
rm -rf "$work"
