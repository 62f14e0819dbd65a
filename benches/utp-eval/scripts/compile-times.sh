#!/bin/bash
# Clean release build, -j 1, of each candidate crate alone (with its own dependencies),
# each in its own empty target dir. Output: results/compile-times.txt
cd "$(dirname "$0")/.."
out=results/compile-times.txt; : > $out
for c in librqbit-utp utp-rs irontide-utp; do
  t=${CARGO_TARGET_DIR:-$HOME/.cache/utp-eval-target}/ct-$c; rm -rf $t
  s=$(date +%s.%N)
  CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_TARGET_DIR=$t cargo build --release -j 1 -p $c > results/ct-$c.log 2>&1; rc=$?
  e=$(date +%s.%N)
  n=$(grep -c Compiling results/ct-$c.log)
  printf "%s rc=%s release -j1 from scratch: %.0f s, %s crates compiled, target %s\n" $c $rc $(echo "$e - $s" | bc) $n "$(du -sh $t | cut -f1)" >> $out
  rm -rf $t
done
