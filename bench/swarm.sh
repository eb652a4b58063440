#!/usr/bin/env bash
# One seeder limited to RATE, DOWNLOADERS `shoal get` starting together on
# one file: how long until all have it, against one downloader alone, in
# one run? "Finished" is when the last download was saved; "exited" when
# the last `get` process left (a finished one keeps serving the others
# while they still fetch from it). A client-server system needs
# DOWNLOADERS x the lone time. Also reports what the seeder sent, and peak
# RSS.
#
#   bench/swarm.sh [SIZE_MIB=256] [RATE=16MiB] [DOWNLOADERS=16]
#   bench/swarm.sh 128 25MB 16        # the engine issue's crowd: target 1.3 x
set -euo pipefail
SIZE_MIB=${1:-256}
RATE=${2:-16MiB}
case "$RATE" in *[0-9]) RATE="${RATE}MiB" ;; esac
N=${3:-16}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# SHOAL=/path/to/another/shoal measures that build instead.
if [ -z "${SHOAL:-}" ]; then
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin shoal
  SHOAL="$ROOT/target/release/shoal"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-swarm.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "timeout waiting for $2 in $1" >&2; exit 1; }
secs() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.3f", (e - s) / 1e9 }'; }

mkdir -p "$WORK/share"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/share/big.bin"
CID=$(b3sum --no-names "$WORK/share/big.bin")
"$SHOAL" tracker --listen 127.0.0.1:0 > "$WORK/tracker.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/tracker.out" "listening on"
TRACKER=$(sed -n 's/^listening on //p' "$WORK/tracker.out")
start_seeder() {
  "$SHOAL" --data-dir "$WORK/seed" --tracker "$TRACKER" node --share "$WORK/share" --listen 127.0.0.1:0 \
    --name seeder --max-upload-rate "$RATE" > "$WORK/seed.out" 2>/dev/null & SEED=$!
  PIDS+=("$SEED")
  wait_for "$WORK/seed.out" "peer id"
  for _ in $(seq 1 200); do
    curl -s "$TRACKER/v1/providers/$CID" | grep -q peer_id && break; sleep 0.05
  done
}
stop_seeder() { kill "$SEED"; wait "$SEED" 2>/dev/null || true; wait_for "$WORK/seed.out" "^served"; }

# A lone downloader.
start_seeder
s=$(date +%s%N)
"$SHOAL" -q --data-dir "$WORK/lone" --tracker "$TRACKER" get "$CID" -o "$WORK/lone/out"
e=$(date +%s%N)
LONE=$(secs "$s" "$e")
cmp -s "$WORK/lone/out/big.bin" "$WORK/share/big.bin" || { echo "lone: wrong bytes" >&2; exit 1; }
stop_seeder

# N downloaders at once (the seeder restarted, so its limiter starts afresh).
start_seeder
s=$(date +%s%N)
GETS=()
for i in $(seq 1 "$N"); do
  # stderr is not a terminal, so no progress bar: only "saved PATH" when
  # the file is in place, stamped as it comes.
  ( /usr/bin/time -f "%M" -o "$WORK/rss$i" "$SHOAL" --data-dir "$WORK/d$i" --tracker "$TRACKER" get "$CID" -o "$WORK/d$i/out" \
      2> >(while IFS= read -r l; do echo "$(date +%s%N) $l"; done > "$WORK/err$i"); echo $(( $(date +%s%N) )) > "$WORK/end$i" ) & GETS+=($!)
done
for p in "${GETS[@]}"; do wait "$p"; done
sleep 0.2 # the stamping readers finish their files
SLOWEST=0
SAVED=0
ALL=()
for i in $(seq 1 "$N"); do
  cmp -s "$WORK/d$i/out/big.bin" "$WORK/share/big.bin" || { echo "downloader $i: wrong bytes" >&2; cat "$WORK/err$i" >&2; exit 1; }
  t=$(secs "$s" "$(cat "$WORK/end$i")")
  SLOWEST=$(awk -v a="$SLOWEST" -v b="$t" 'BEGIN { print (b > a) ? b : a }')
  at=$(awk '/ saved / { print $1; exit }' "$WORK/err$i")
  [ -n "$at" ] || { echo "downloader $i never said saved" >&2; cat "$WORK/err$i" >&2; exit 1; }
  t=$(secs "$s" "$at")
  ALL+=("$t")
  SAVED=$(awk -v a="$SAVED" -v b="$t" 'BEGIN { print (b > a) ? b : a }')
done
stop_seeder
SENT=$(sed -n 's/^served \([0-9]*\) bytes/\1/p' "$WORK/seed.out")
RSS=$(cat "$WORK"/rss* | sort -n | tail -1)
echo "seeder at ${RATE}/s, ${SIZE_MIB} MiB file: lone downloader ${LONE} s"
echo "$N downloaders together: all finished after ${SAVED} s = $(awk -v a="$SAVED" -v b="$LONE" 'BEGIN { printf "%.2f", a / b }') x the lone time; all exited after ${SLOWEST} s = $(awk -v a="$SLOWEST" -v b="$LONE" 'BEGIN { printf "%.2f", a / b }') x"
echo "each saved after (s): $(printf '%s\n' "${ALL[@]}" | sort -g | tr '\n' ' ')"
echo "seeder sent $(awk -v b="$SENT" -v s="$SIZE_MIB" 'BEGIN { printf "%.2f", b / (s * 1048576) }') x the file; peak RSS of a downloader $((RSS / 1024)) MiB"
