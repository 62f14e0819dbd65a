#!/bin/bash
cd "$(dirname "$0")/.."
for k in rqbit libutp eth irontide; do TCP_CC=cubic scripts/ledbat.sh $k; done
TCP_CC=bbr scripts/ledbat.sh rqbit
TCP_CC=bbr scripts/ledbat.sh libutp
