#!/usr/bin/env bash
# Time to first byte of `shoal get CONTENT_ID` through a private Mainline
# DHT on loopback, the tracker down: DHT_NODES bare `shoal dht` nodes, one
# node sharing a file, RUNS downloads each from a fresh data dir (so
# nothing is cached). Prints each run and the median and p95.
#
#   bench/dht.sh [DHT_NODES=20] [RUNS=20] [SIZE_MIB=4]
#
# Only 127.0.0.1 is used: no packet leaves the machine.
set -euo pipefail
NODES=${1:-20}
RUNS=${2:-20}
SIZE_MIB=${3:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin shoal
SHOAL="$ROOT/target/release/shoal"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-dht-bench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/share"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/share/file.bin"
CID=$(b3sum --no-names "$WORK/share/file.bin")

wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "timeout waiting for $2 in $1" >&2; cat "$1" >&2; exit 1; }
udp_of() { sed -n 's/.*dht listening on udp:\/\/\(.*\)/\1/p' "$1" | head -1; }

"$SHOAL" --data-dir "$WORK/dht0" dht --listen 127.0.0.1:0 > "$WORK/dht0.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/dht0.out" "dht listening"
BOOT=$(udp_of "$WORK/dht0.out")
for i in $(seq 1 $((NODES - 1))); do
  "$SHOAL" --data-dir "$WORK/dht$i" dht --listen 127.0.0.1:0 --dht-bootstrap "$BOOT" > "$WORK/dht$i.out" 2>/dev/null & PIDS+=($!)
done
for i in $(seq 1 $((NODES - 1))); do wait_for "$WORK/dht$i.out" "dht listening"; done

"$SHOAL" tracker --listen 127.0.0.1:0 > "$WORK/tracker.out" 2>/dev/null & TRACKER_PID=$!; PIDS+=($TRACKER_PID)
wait_for "$WORK/tracker.out" "listening on"
TRACKER=$(sed -n 's/^listening on \(.*\)/\1/p' "$WORK/tracker.out" | head -1)
"$SHOAL" --data-dir "$WORK/node" --tracker "$TRACKER" --dht-bootstrap "$BOOT" node --share "$WORK/share" \
  --listen 127.0.0.1:0 --name seeder > "$WORK/node.out" 2>"$WORK/node.err" & PIDS+=($!)
wait_for "$WORK/node.out" "peer id"
kill "$TRACKER_PID"

# The seeder announces shortly after it starts; wait until a get works.
for attempt in $(seq 1 60); do
  if "$SHOAL" -q --data-dir "$WORK/warm" --tracker "$TRACKER" --dht-bootstrap "$BOOT" get "$CID" -o "$WORK/warm-out" 2>/dev/null; then break; fi
  rm -rf "$WORK/warm"
  [ "$attempt" = 60 ] && { echo "the DHT never found the seeder" >&2; cat "$WORK/node.err" >&2; exit 1; }
  sleep 0.5
done

MS=()
for r in $(seq 1 "$RUNS"); do
  OUT="$WORK/out$r"; mkdir -p "$OUT"
  START=$(date +%s%N)
  "$SHOAL" -q --data-dir "$WORK/fresh$r" --tracker "$TRACKER" --dht-bootstrap "$BOOT" get "$CID" -o "$OUT" 2>"$WORK/get$r.err" & GET=$!
  FIRST=""
  while kill -0 "$GET" 2>/dev/null; do
    if [ -n "$(find "$OUT" -type f -size +0c -print -quit 2>/dev/null)" ]; then FIRST=$(date +%s%N); break; fi
    sleep 0.005
  done
  wait "$GET" || { echo "run $r failed:" >&2; cat "$WORK/get$r.err" >&2; exit 1; }
  [ -n "$FIRST" ] || FIRST=$(date +%s%N)
  cmp -s "$OUT/file.bin" "$WORK/share/file.bin" || { echo "run $r: bytes differ" >&2; exit 1; }
  ms=$(( (FIRST - START) / 1000000 ))
  echo "run $r: first byte after $ms ms"
  MS+=("$ms")
done
printf '%s\n' "${MS[@]}" | sort -n > "$WORK/ms"
MEDIAN=$(awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}' "$WORK/ms")
P95=$(awk '{a[NR]=$1} END {i=int(NR*0.95+0.999); if (i>NR) i=NR; print a[i]}' "$WORK/ms")
echo "dht nodes: $NODES, runs: $RUNS, file: ${SIZE_MIB} MiB, tracker down"
echo "time to first byte: median ${MEDIAN} ms, p95 ${P95} ms"
