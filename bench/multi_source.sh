#!/usr/bin/env bash
# Four providers, each limited to RATE by --max-upload-rate: how fast does
# one `shoal get` fetch a file from all of them? Target: 3.2 x RATE or better.
# Also reports the downloader's peak RSS (target with 8 providers: <= 96 MiB).
#
#   bench/multi_source.sh [SIZE_MIB=256] [RATE_MIB=40] [PROVIDERS=4] [RUNS=3]
set -euo pipefail
SIZE_MIB=${1:-256}
RATE_MIB=${2:-40}
PROVIDERS=${3:-4}
RUNS=${4:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin shoal
SHOAL="$ROOT/target/release/shoal"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-multi.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "timeout waiting for $2 in $1" >&2; exit 1; }

mkdir -p "$WORK/share" "$WORK/out"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/share/big.bin"
"$SHOAL" tracker --listen 127.0.0.1:0 > "$WORK/tracker.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/tracker.out" "listening on"
TRACKER=$(sed -n 's/^listening on //p' "$WORK/tracker.out")
for i in $(seq 1 "$PROVIDERS"); do
  "$SHOAL" --data-dir "$WORK/node$i" --tracker "$TRACKER" node --share "$WORK/share" --listen 127.0.0.1:0 \
    --name "p$i" --max-upload-rate "${RATE_MIB}MiB" > "$WORK/node$i.out" 2>/dev/null & PIDS+=($!)
done
for i in $(seq 1 "$PROVIDERS"); do wait_for "$WORK/node$i.out" "peer id"; done
CID=$(b3sum --no-names "$WORK/share/big.bin" 2>/dev/null || "$SHOAL" --data-dir "$WORK/c" --tracker "$TRACKER" ls p1 --json | sed -n 's/.*"content_id": "\([0-9a-f]*\)".*/\1/p')
for _ in $(seq 1 200); do
  n=$(curl -s "$TRACKER/v1/providers/$CID" | grep -o peer_id | wc -l)
  [ "$n" -ge "$PROVIDERS" ] && break; sleep 0.1
done

T=()
RSS=()
for _ in $(seq 1 "$RUNS"); do
  rm -f "$WORK/out/big.bin"; sync
  s=$(date +%s%N)
  /usr/bin/time -f "%M" -o "$WORK/rss" "$SHOAL" -q --data-dir "$WORK/c" --tracker "$TRACKER" get "$CID" -o "$WORK/out"
  RSS+=("$(( $(cat "$WORK/rss") / 1024 ))")
  e=$(date +%s%N)
  T+=("$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", (e - s) / 1e9 }')")
  cmp -s "$WORK/out/big.bin" "$WORK/share/big.bin" || { echo "wrong bytes" >&2; exit 1; }
done
M=$(printf '%s\n' "${T[@]}" | sort -g | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }')
echo "$PROVIDERS providers at ${RATE_MIB} MiB/s each, ${SIZE_MIB} MiB file, runs (s): ${T[*]}"
echo "peak RSS of the downloader per run (MiB): ${RSS[*]}"
awk -v m="$M" -v s="$SIZE_MIB" -v r="$RATE_MIB" 'BEGIN { printf "median %.3f s = %.1f MiB/s = %.2f x the per-provider rate\n", m, s / m, s / m / r }'
