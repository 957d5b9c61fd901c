#!/usr/bin/env bash
# Build ctrack and replay the bundled sample capture (made by tests/scenarios/gen.py):
# per-packet results, then the final table as `conntrack -L` prints it, then `conntrack -S`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ctrack
echo "== ctrack replay --packets samples/sample.pcap"
./target/release/ctrack replay --packets samples/sample.pcap
echo
echo "== ctrack replay --stats samples/sample.pcap"
./target/release/ctrack replay --stats samples/sample.pcap
