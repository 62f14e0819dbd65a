#!/bin/bash
# The vendored librqbit-utp (vendor/librqbit-utp) with CUBIC (upstream's controller, RQ_CC=cubic)
# and with LEDBAT (its default), side by side, as root:
#   1. 1 GiB over loopback, N runs each (N=${RUNS:-3});
#   2. 25 ms + 1 % loss each way (RTT 50 ms), 30 s, TCP CUBIC as the reference, N runs;
#   3. yield to a TCP CUBIC flow on 20 Mbit/s with a 200- and a 1000-packet queue; with
#      LIBUTP_REF=1 also libutp (the C++ reference LEDBAT; needs the libutp feature).
# Output: ${RESULTS:-results/ledbat-vendored}/summary.txt (raw files beside it).
#   scripts/ledbat-compare.sh [loopback|shaped|yield]...
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/utp-eval-target}/release/utp-eval}
cd "$(dirname "$0")/.."
OUT=${RESULTS:-results/ledbat-vendored}; mkdir -p $OUT
RUNS=${RUNS:-3}
parts=${*:-loopback shaped yield}
S=$OUT/summary.txt
log() { echo "$@" | tee -a $S; }
log "== $(date -u +%FT%TZ) $(uname -r), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for part in $parts; do
case $part in
loopback)
  for i in $(seq $RUNS); do
    for cc in cubic ledbat; do
      RQ_CC=$cc RESULTS=$OUT/lo-$cc-$i scripts/loopback.sh rqbit > /dev/null 2>&1
      log "loopback 1GiB rqbit/$cc run $i: $(grep -h '^DONE' $OUT/lo-$cc-$i/lo-rqbit.server | grep -o 'MBps=[0-9.]*') (server), $(grep -h -o 'closed=[a-z]*' $OUT/lo-$cc-$i/lo-rqbit.client) load $(cut -d' ' -f1 /proc/loadavg)"
    done
  done ;;
shaped)
  for i in $(seq $RUNS); do
    TCP_CC=cubic RESULTS=$OUT/sh-tcp-$i scripts/shaped.sh tcp > /dev/null 2>&1
    log "shaped 25ms+1% tcp/cubic run $i: $(grep -h -o 'MBps=[0-9.]*' $OUT/sh-tcp-$i/sh-tcp.client) (client)"
    for cc in cubic ledbat; do
      RQ_CC=$cc RESULTS=$OUT/sh-$cc-$i scripts/shaped.sh rqbit > /dev/null 2>&1
      log "shaped 25ms+1% rqbit/$cc run $i: $(grep -h -o 'MBps=[0-9.]*' $OUT/sh-$cc-$i/sh-rqbit.client) (client) $(grep -h -o 'closed=[a-z]*' $OUT/sh-$cc-$i/sh-rqbit.client)"
    done
  done ;;
yield)
  kinds="rqbit/cubic rqbit/ledbat ${LIBUTP_REF:+libutp/-}"
  for q in 200 1000; do
    for kc in $kinds; do
      k=${kc%/*}; cc=${kc#*/}
      RQ_CC=${cc/-/ledbat} QUEUE=$q TCP_CC=cubic RESULTS=$OUT/yield-$k-$cc-q$q scripts/ledbat.sh $k > /dev/null 2>&1
      log "yield q=$q $k/$cc: $(grep -h SUMMARY $OUT/yield-$k-$cc-q$q/*.txt)"
    done
  done ;;
esac
done
log "namespaces left: $(ip netns list | wc -l)"
