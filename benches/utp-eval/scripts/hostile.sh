#!/bin/bash
# Hostile input against a listening uTP socket while a legitimate bulk transfer runs.
#   scripts/hostile.sh <kind>      output: $R/hostile-<kind>.txt
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/utp-eval-target}/release/utp-eval}
cd "$(dirname "$0")/.."; R=${RESULTS:-results}; mkdir -p $R
k=$1; out=$R/hostile-$k; port=${PORT:-47600}
$BIN server $k 127.0.0.1:$port --stats > $out.server 2>&1 & spid=$!
sleep 1
stat() { echo "  [$1] $(grep STAT $out.server | tail -1)"; }
{
stat baseline
# legitimate transfer alongside, rate-limited by nothing; 45 s
$BIN client $k 127.0.0.1:$port --secs 45 > $out.bulk 2>&1 & bulk=$!
sleep 2; stat "bulk running"
$BIN hostile 127.0.0.1:$port garbage 20000; sleep 1; stat "after garbage"
$BIN hostile 127.0.0.1:$port synflood 20000 64; sleep 1; stat "after synflood"
sleep 3; stat "synflood +4 s"
timeout 20 $BIN client $k 127.0.0.1:$port --bytes 1048576 | sed 's/^/  legit client during flood aftermath: /'
$BIN hostile 127.0.0.1:$port conn; sleep 1; stat "after conn abuse"
sleep 12; stat "+12 s"
timeout 20 $BIN client $k 127.0.0.1:$port --bytes 1048576 | sed 's/^/  legit client after: /'
wait $bulk; sed 's/^/  bulk transfer: /' $out.bulk | grep -E "CLIENT|Error"
stat end
echo "  server alive: $(kill -0 $spid 2>/dev/null && echo yes || echo NO)"
echo "  max rss_kib: $(grep -o 'rss_kib=[0-9]*' $out.server | cut -d= -f2 | sort -n | tail -1)"
echo "  panics: $(grep -c 'panicked at' $out.server)"; grep -m3 'panicked at' $out.server
echo "  server lines: $(grep -E '^(CONN-ERROR|DONE)' $out.server | sed 's/ conn=[0-9]* .*after/ after/; s/ conn=[0-9]*.*bytes=/ bytes=/' | cut -c1-60 | sort | uniq -c | sort -rn | head -5 | tr '\n' ';')"
} 2>&1 | tee $out.txt
kill $spid 2>/dev/null; wait $spid 2>/dev/null
