#!/bin/bash
# 1 GiB bulk transfer over loopback, one kind at a time: server and client are separate
# single-threaded (current_thread) processes.   scripts/loopback.sh [kinds...] [BYTES=...]
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/utp-eval-target}/release/utp-eval}
BYTES=${BYTES:-1073741824}
cd "$(dirname "$0")/.."; R=${RESULTS:-results}; mkdir -p $R
kinds=${*:-tcp rqbit irontide eth rqbit-shared irontide-shared}
port=47100
for k in $kinds; do
  port=$((port+1))
  $BIN server $k 127.0.0.1:$port > $R/lo-$k.server 2>&1 & spid=$!
  sleep 0.5
  timeout 300 $BIN client $k 127.0.0.1:$port --bytes $BYTES > $R/lo-$k.client 2>&1
  sleep 1; kill $spid 2>/dev/null; wait $spid 2>/dev/null
  echo "== $k"; grep -h -E "^(DONE|CLIENT|CONN-ERROR)" $R/lo-$k.client $R/lo-$k.server; grep -h "panicked at" $R/lo-$k.* | head -3
done
