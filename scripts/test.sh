#!/usr/bin/env bash
# Run every test of the workspace, kernel parity included.
# As root on a fresh Debian machine it first installs what the kernel-parity tests need
# (nftables, conntrack, iproute2). Without root the parity tests skip and say so
# (with CI=true a skip is a failure).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in nft:nftables conntrack:conntrack ip:iproute2; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "note: ${need[*]} missing and not root: kernel parity tests will skip"
  fi
fi

cargo build --workspace --all-targets
cargo test --workspace -- --nocapture
