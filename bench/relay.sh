#!/usr/bin/env bash
# A download through the relay against a direct one, on 127.0.0.1 only:
# SIZE_MIB fetched RUNS times each way, interleaved (fresh connections each
# run); the relay (`shoal relay`, its own process) CPU per GiB piped; then
# its RSS with 100 idle and 4 busy pipes. See bench/rust/src/bin/relay.rs.
#
#   bench/relay.sh [SIZE_MIB=1024] [RUNS=5]
set -euo pipefail
SIZE=${1:-1024}
RUNS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p shoal -p shoal-bench --bins
exec "$ROOT/target/release/relay" "$ROOT/target/release/shoal" "$SIZE" "$RUNS"
