#!/usr/bin/env bash
# Build ctrack and replay the bundled sample capture (made by samples/make_sample.py from
# the scenario library): per-packet results, then the final table as `conntrack -L`
# prints it, then `conntrack -S`.
set -euo pipefail
cd "$(dirname "$0")/.."
ctrack() { cargo run --quiet --release -p ctrack -- "$@"; }
cargo build --release -p ctrack
echo "== ctrack replay --packets samples/sample.pcap"
ctrack replay --packets samples/sample.pcap
echo
echo "== ctrack replay --stats samples/sample.pcap"
ctrack replay --stats samples/sample.pcap
