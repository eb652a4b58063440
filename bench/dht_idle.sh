#!/usr/bin/env bash
# What a DHT costs a node at rest: two nodes share the same folder, one
# with a private DHT (DHT_NODES bare `shoal dht` nodes on loopback), one
# without; after a warm-up both are left alone for SECS seconds. Prints
# each node's CPU (user+system, as % of one core) and RSS at the end.
#
#   bench/dht_idle.sh [SECS=600] [DHT_NODES=20] [FILES=200]
#
# Only 127.0.0.1 is used: no packet leaves the machine.
set -euo pipefail
SECS=${1:-600}
NODES=${2:-20}
FILES=${3:-200}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin shoal
SHOAL="$ROOT/target/release/shoal"
TICKS=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-dht-idle.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/share"
for i in $(seq 1 "$FILES"); do head -c 65536 /dev/urandom > "$WORK/share/f$i.bin"; done

wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "timeout waiting for $2 in $1" >&2; exit 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

"$SHOAL" --data-dir "$WORK/dht0" dht --listen 127.0.0.1:0 > "$WORK/dht0.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/dht0.out" "dht listening"
BOOT=$(sed -n 's/.*udp:\/\/\(.*\)/\1/p' "$WORK/dht0.out")
for i in $(seq 1 $((NODES - 1))); do
  "$SHOAL" --data-dir "$WORK/dht$i" dht --listen 127.0.0.1:0 --dht-bootstrap "$BOOT" > "$WORK/dht$i.out" 2>/dev/null & PIDS+=($!)
done
"$SHOAL" tracker --listen 127.0.0.1:0 > "$WORK/tracker.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/tracker.out" "listening on"
TRACKER=$(sed -n 's/^listening on \(.*\)/\1/p' "$WORK/tracker.out" | head -1)
"$SHOAL" --data-dir "$WORK/plain" --tracker "$TRACKER" node --share "$WORK/share" --listen 127.0.0.1:0 --name plain > "$WORK/plain.out" 2>/dev/null & PLAIN=$!; PIDS+=($PLAIN)
"$SHOAL" --data-dir "$WORK/dht" --tracker "$TRACKER" --dht-bootstrap "$BOOT" node --share "$WORK/share" --listen 127.0.0.1:0 --name dht > "$WORK/dht.out" 2>/dev/null & WITH=$!; PIDS+=($WITH)
wait_for "$WORK/plain.out" "peer id"
wait_for "$WORK/dht.out" "peer id"
sleep 30  # warm-up: the DHT node publishes and announces its $FILES content ids
P0=$(cpu_ticks $PLAIN); D0=$(cpu_ticks $WITH)
sleep "$SECS"
P1=$(cpu_ticks $PLAIN); D1=$(cpu_ticks $WITH)
pct() { awk -v t="$1" -v hz="$TICKS" -v s="$SECS" 'BEGIN {printf "%.3f", 100 * t / hz / s}'; }
echo "at rest for ${SECS}s, $FILES files shared, private DHT of $NODES nodes"
echo "without DHT: cpu $(pct $((P1 - P0)))% of a core, rss $(( $(rss_kib $PLAIN) / 1024 )) MiB"
echo "with DHT:    cpu $(pct $((D1 - D0)))% of a core, rss $(( $(rss_kib $WITH) / 1024 )) MiB"
