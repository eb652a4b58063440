#!/usr/bin/env bash
# A node sharing 10,000 files: how long a restart takes until it serves the
# full listing (content ids come from the hash cache, nothing is re-hashed).
#
#   bench/restart_10k.sh [FILES=10000] [RUNS=5]
set -euo pipefail
FILES=${1:-10000}
RUNS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin shoal
SHOAL="$ROOT/target/release/shoal"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-restart.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
python3 - "$WORK/share" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"dir{i // 100:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file{i:05d}.txt"), "wb") as f:
        f.write(os.urandom(1024))
PY
"$SHOAL" tracker --listen 127.0.0.1:0 > "$WORK/tracker.out" 2>/dev/null & PIDS+=($!)
for _ in $(seq 1 200); do grep -q listening "$WORK/tracker.out" && break; sleep 0.02; done
TRACKER=$(sed -n 's/^listening on //p' "$WORK/tracker.out")

# Start a node, wait for its listing to be complete; print ms from spawn.
run_node() {
  local out="$WORK/node.out"; : > "$out"
  local s; s=$(date +%s%N)
  "$SHOAL" --data-dir "$WORK/data" --tracker "$TRACKER" node --share "$WORK/share" --listen 127.0.0.1:0 --name n > "$out" 2>"$WORK/node.err" &
  echo $! > "$WORK/node.pid"
  until grep -q "peer id" "$out"; do sleep 0.002; done
  local listening; listening=$(( ($(date +%s%N) - s) / 1000000 ))
  local n; n=$("$SHOAL" --data-dir "$WORK/client" --tracker "$TRACKER" ls n --json | grep -c '"content_id"')
  local served; served=$(( ($(date +%s%N) - s) / 1000000 ))
  [ "$n" = "$FILES" ] || { echo "listed $n of $FILES files" >&2; exit 1; }
  echo "$listening $served"
}
stop_node() {
  local pid; pid=$(cat "$WORK/node.pid"); kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
}

read -r first_listen first_served < <(run_node); stop_node
echo "first start (hashing $FILES files): listening after ${first_listen} ms, full listing served after ${first_served} ms"
L=(); S=()
for _ in $(seq 1 "$RUNS"); do
  read -r l s < <(run_node); stop_node
  L+=("$l"); S+=("$s")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }'; }
echo "restarts (ms to listening): ${L[*]}"
echo "restarts (ms to full listing fetched by a client): ${S[*]}"
echo "median restart: listening $(median "${L[@]}") ms, full listing served $(median "${S[@]}") ms"
