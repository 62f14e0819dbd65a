#!/bin/bash
# Same as ledbat.sh with a 1000-packet (~600 ms) queue: a bloated home-router buffer.
cd "$(dirname "$0")/.."
for k in libutp rqbit; do
  QUEUE=1000 TCP_CC=cubic scripts/ledbat.sh $k
  for f in results/ledbat-$k-tcp_cubic.*; do mv $f ${f/tcp_cubic/tcp_cubic-q1000}; done
done
