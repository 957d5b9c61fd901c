#!/usr/bin/env bash
# Instructions per packet of `ctrack bench` workloads, counted by callgrind: a
# deterministic figure for comparing two builds on a noisy machine (BENCHMARKS.md,
# "Instruction counts"). Counts only the timed part: the engine driven in batches
# (`bench::drive`) or, for `replay`, `Replay::packet_outcome`, per call (the bench runs
# the capture once per mode — reader thread and window, window alone, neither — so the
# figure is the mean over its modes; only the windowed ones use the window's hint).
#
#   scripts/instructions.sh [WORKLOAD ...]        default: hit udp-flows tcp new-flows replay
#   CTRACK=/path/to/ctrack scripts/instructions.sh hit    another build (e.g. the base of a change)
#
# Needs valgrind (apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CTRACK:-}" ]; then
  cargo build --release -q -p ctrack
  CTRACK=target/release/ctrack
fi
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
for w in "${@:-hit udp-flows tcp new-flows replay}"; do
  for w in $w; do
    case $w in
      hit) n=200000; args=(--packets $n); fn='*bench*drive*' ;;
      udp-flows) n=1000000; args=(); fn='*bench*drive*' ;;
      tcp) n=800000; args=(); fn='*bench*drive*' ;;
      # The cold run, then the warm-slab run's untimed fill and its timed part.
      new-flows) n=$((3 * 200000)); args=(--flows 200000); fn='*bench*drive*' ;;
      replay) n=0; args=(--packets 200000 --flows 10000); fn='*packet_outcome*' ;;
      *) echo "no instruction count for $w" >&2; exit 2 ;;
    esac
    log=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "--toggle-collect=$fn" \
      "$CTRACK" bench "$w" --repeat 1 "${args[@]}" >"$log" 2>&1
    total=$(awk '/Collected/ {print $4}' "$log")
    if [ "$w" = replay ]; then
      # The bench replays the capture once per mode: three since the reader thread
      # (its line says "one thread: ..."), two in older builds.
      if grep -q "one thread:" "$log"; then n=$((3 * 200000)); else n=$((2 * 200000)); fi
    fi
    rm -f "$log"
    echo "$w: $total instructions, $((total / n)) per packet"
  done
done
