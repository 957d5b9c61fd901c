#!/usr/bin/env bash
# Interleaved A/B timing of `ctrack bench` between builds: each round runs every
# binary once, alternating, so the VM's slow phases hit all of them alike; prints each
# binary's Mpps figures sorted (BENCHMARKS.md quotes their range and median).
#
#   scripts/ab.sh ROUNDS "BENCH ARGS" BIN1 BIN2 [...]
#   scripts/ab.sh 4 "udp-flows" /tmp/old/ctrack target/release/ctrack
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 ROUNDS \"BENCH ARGS\" BIN1 BIN2 [...]" >&2; exit 2; }
rounds=$1; args=$2; shift 2
for _ in $(seq "$rounds"); do
  for b in "$@"; do
    # shellcheck disable=SC2086 # the bench arguments are words on purpose
    echo "$b $("$b" bench $args | tail -1 | awk '{print $4}')"
  done
done | sort -k1,1 -k2n | awk '{a[$1] = a[$1] " " $2} END {for (k in a) print k ":" a[k]}'
