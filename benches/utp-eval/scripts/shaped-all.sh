#!/bin/bash
# The lossy-link table: 3 runs of tcp, rqbit, libutp; 1 of irontide, eth.
cd "$(dirname "$0")/.."
for i in 1 2 3; do scripts/shaped.sh tcp rqbit libutp; done
scripts/shaped.sh irontide eth
