#!/bin/bash
# Bulk transfer through an emulated 25 ms + 1% loss link each way (RTT 50 ms):
# 30 s or 200 MiB, whichever comes first.   scripts/shaped.sh [kinds...]
# LINK="--delay-ms 25 --loss 0.01" by default.
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/utp-eval-target}/release/utp-eval}
LINK=${LINK:---delay-ms 25 --loss 0.01}
SECS=${SECS:-30}; BYTES=${BYTES:-209715200}
cd "$(dirname "$0")/.."; R=${RESULTS:-results}; mkdir -p $R
tag=sh$$
trap 'scripts/link.sh down $tag' EXIT
kinds=${*:-tcp rqbit libutp irontide eth}
scripts/link.sh up $tag $LINK
for k in $kinds; do
  ip netns exec uev-$tag-b $BIN server $k 10.77.0.2:47400 > $R/sh-$k.server 2>&1 & spid=$!
  sleep 0.5
  ip netns exec uev-$tag-a timeout $((SECS+150)) $BIN client $k 10.77.0.2:47400 --secs $SECS --bytes $BYTES > $R/sh-$k.client 2>&1
  sleep 1; kill $spid 2>/dev/null; wait $spid 2>/dev/null
  echo "== $k ($LINK)"; grep -h -E "^(DONE|CLIENT|CONN-ERROR)" $R/sh-$k.client $R/sh-$k.server; grep -h "panicked at" $R/sh-$k.* | head -3
  grep -h "Error" $R/sh-$k.client | head -2
done
cat /tmp/uev-$tag/linkem.err | tail -2
