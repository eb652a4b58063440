#!/usr/bin/env bash
# A folder of FILES small files (4 KiB each, 100 per subfolder): `shoal get
# PEER:DIR/` against `rsync -a` from an rsync daemon over plain TCP on
# loopback, interleaved, RUNS each; and single-file `shoal get` runs (SINGLES
# of them, timed and scaled to FILES) for the one-request-per-file cost.
# Targets: shoal <= 2 x rsync, and <= 1/5 of FILES single gets.
#
#   bench/folder_vs_rsync.sh [FILES=10000] [RUNS=5] [SINGLES=100]
set -euo pipefail
FILES=${1:-10000}
RUNS=${2:-5}
SINGLES=${3:-100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v rsync > /dev/null || { echo "rsync is not installed (apt-get install rsync)" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin shoal
SHOAL="$ROOT/target/release/shoal"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-folder.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "timeout waiting for $2 in $1" >&2; exit 1; }
now() { date +%s%N; }
secs() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.3f", (e - s) / 1e9 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }'; }

echo "making $FILES files..." >&2
python3 - "$WORK/share/tree" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i // 100:03}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05}.bin"), "wb") as f:
        f.write(os.urandom(4096))
PY

"$SHOAL" tracker --listen 127.0.0.1:0 > "$WORK/tracker.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/tracker.out" "listening on"
TRACKER=$(sed -n 's/^listening on //p' "$WORK/tracker.out")
"$SHOAL" --data-dir "$WORK/node" --tracker "$TRACKER" node --share "$WORK/share" --listen 127.0.0.1:0 \
  --name alice > "$WORK/node.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/node.out" "peer id"
for _ in $(seq 1 200); do
  "$SHOAL" -q --data-dir "$WORK/c" --tracker "$TRACKER" peers 2>/dev/null | grep -q alice && break; sleep 0.1
done

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/rsyncd.conf" <<CONF
use chroot = no
[share]
path = $WORK/share
read only = yes
CONF
rsync --daemon --no-detach --address=127.0.0.1 --port="$PORT" --config="$WORK/rsyncd.conf" & PIDS+=($!)
for _ in $(seq 1 100); do rsync "rsync://127.0.0.1:$PORT/" > /dev/null 2>&1 && break; sleep 0.05; done

S=(); R=()
for i in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/out-s" "$WORK/out-r"; sync
  mkdir -p "$WORK/out-r"
  s=$(now); rsync -a "rsync://127.0.0.1:$PORT/share/tree/" "$WORK/out-r/tree/"; e=$(now); R+=("$(secs "$s" "$e")")
  sync
  s=$(now); "$SHOAL" -q --data-dir "$WORK/c" --tracker "$TRACKER" get alice:tree/ -o "$WORK/out-s"; e=$(now); S+=("$(secs "$s" "$e")")
  diff -r "$WORK/out-s/tree" "$WORK/share/tree" > /dev/null || { echo "shoal: folders differ" >&2; exit 1; }
  diff -r "$WORK/out-r/tree" "$WORK/share/tree" > /dev/null || { echo "rsync: folders differ" >&2; exit 1; }
done

# Single-file gets, one process each, as a user without folder support would.
rm -rf "$WORK/out-1"
s=$(now)
for i in $(seq 0 $((SINGLES - 1))); do
  f=$(printf "d%03d/f%05d.bin" $((i / 100)) "$i")
  "$SHOAL" -q --data-dir "$WORK/c" --tracker "$TRACKER" get "alice:tree/$f" -o "$WORK/out-1/$i"
done
e=$(now)
ONE=$(secs "$s" "$e")

MS=$(median "${S[@]}"); MR=$(median "${R[@]}")
echo "$FILES files of 4 KiB; runs (s) shoal: ${S[*]}; rsync: ${R[*]}"
echo "median shoal get DIR/ $MS s, rsync -a $MR s: $(awk -v a="$MS" -v b="$MR" 'BEGIN { printf "%.2f", a / b }') x rsync (target <= 2)"
awk -v one="$ONE" -v n="$SINGLES" -v f="$FILES" -v ms="$MS" 'BEGIN {
  all = one / n * f
  printf "%d single gets took %.3f s: %d would take ~%.0f s; the folder get is %.3f of that (target <= 0.2)\n", n, one, f, all, ms / all }'
