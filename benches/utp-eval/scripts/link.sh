#!/bin/bash
# Two network namespaces joined by a userspace-emulated link (utp-eval linkem, since this
# kernel has no netem).
#   scripts/link.sh up <tag> <linkem args>    e.g. --delay-ms 25 --loss 0.01
#   scripts/link.sh down <tag>
# uev-<tag>-a has 10.77.0.1 on ta-<tag>; uev-<tag>-b has 10.77.0.2 on tb-<tag>.
set -e
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/utp-eval-target}/release/utp-eval}
cmd=$1; tag=$2; shift 2
A=uev-$tag-a; B=uev-$tag-b; RUN=/tmp/uev-$tag; mkdir -p $RUN
case $cmd in
up)
  ip netns add $A; ip netns add $B
  $BIN linkem ta-$tag tb-$tag "$@" > $RUN/linkem.out 2> $RUN/linkem.err &
  echo $! > $RUN/linkem.pid
  for i in $(seq 50); do grep -q READY $RUN/linkem.out 2>/dev/null && break; sleep 0.1; done
  ip link set ta-$tag netns $A; ip link set tb-$tag netns $B
  ip -n $A addr add 10.77.0.1/24 dev ta-$tag; ip -n $B addr add 10.77.0.2/24 dev tb-$tag
  for ns in $A $B; do ip -n $ns link set lo up; done
  ip -n $A link set ta-$tag up; ip -n $B link set tb-$tag up
  # (TCP congestion control: the client sets it per socket from TCP_CC; machine default bbr)
  ;;
down)
  [ -f $RUN/linkem.pid ] && kill $(cat $RUN/linkem.pid) 2>/dev/null || true
  rm -f $RUN/linkem.pid
  ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true
  ;;
esac
