#!/usr/bin/env bash
# The tracker under load, on 127.0.0.1 only (see bench/rust/src/bin/trackerload.rs):
# a memory-store tracker filled with PEERS signed registrations (rate, RSS),
# then lookups while renewals run; Shoal registrations interleaved with
# announces to Debian's opentracker; two trackers on one redis-server.
# Every process shares this machine's cores: CPU seconds of each are shown.
#
#   bench/tracker.sh [PEERS=1000000] [SECS=15] [REDIS_PEERS=100000]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p shoal -p shoal-bench --bins
exec "$ROOT/target/release/trackerload" "$ROOT/target/release/shoal" "${1:-1000000}" "${2:-15}" "${3:-100000}"
