#!/bin/bash
# Does uTP yield to TCP? Link: 20 Mbit/s each way, 25 ms each way, drop-tail queue of 200
# packets (~120 ms at 20 Mbit/s). uTP flow runs 0-50 s, TCP flow 10-40 s.
#   scripts/ledbat.sh <utp kind> [TCP_CC=cubic|bbr]
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/utp-eval-target}/release/utp-eval}
cd "$(dirname "$0")/.."; R=${RESULTS:-results}; mkdir -p $R
k=$1; cc=${TCP_CC:-default}
tag=lb$$; out=$R/ledbat-$k-tcp_$cc
trap 'scripts/link.sh down $tag' EXIT
scripts/link.sh up $tag --delay-ms 25 --rate-mbit 20 --queue ${QUEUE:-200}
ip netns exec uev-$tag-b $BIN server $k 10.77.0.2:47500 > $out.utp.server 2>&1 & s1=$!
ip netns exec uev-$tag-b $BIN server tcp 10.77.0.2:47501 > $out.tcp.server 2>&1 & s2=$!
sleep 0.5
t0=$(date +%s.%N)
ip netns exec uev-$tag-a $BIN client $k 10.77.0.2:47500 --secs 50 > $out.utp.client 2>&1 & c1=$!
sleep 10
ip netns exec uev-$tag-a $BIN client tcp 10.77.0.2:47501 --secs 30 > $out.tcp.client 2>&1 & c2=$!
wait $c1 $c2
kill $s1 $s2 2>/dev/null; wait $s1 $s2 2>/dev/null
python3 scripts/ledbat_table.py $t0 $out.utp.server $out.tcp.server > $out.txt
cat $out.txt; grep -h -E "^(CLIENT|CONN-ERROR)" $out.*.client $out.*.server
tail -2 /tmp/uev-$tag/linkem.err
