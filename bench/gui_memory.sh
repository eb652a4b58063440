#!/usr/bin/env bash
# Memory of the desktop app while it downloads a big file: `shoal gui`
# runs under Xvfb (Mesa's software GL) with --start --get, and its peak RSS
# (VmHWM) is read when the file is complete. Target: < 150 MiB for 1 GiB.
# The same download by `shoal get` runs interleaved, for comparison.
# Needs Xvfb (Debian: xvfb).
#
#   bench/gui_memory.sh [SIZE_MIB=1024] [RUNS=3]
set -euo pipefail
SIZE_MIB=${1:-1024}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v Xvfb >/dev/null || { echo "needs Xvfb (apt-get install xvfb)" >&2; exit 2; }
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin shoal
SHOAL="$ROOT/target/release/shoal"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-guimem.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "timeout waiting for $2 in $1" >&2; exit 1; }

DISP=":$((90 + RANDOM % 100))"
Xvfb "$DISP" -screen 0 1280x860x24 -nolisten tcp > "$WORK/xvfb.out" 2>&1 & PIDS+=($!)
mkdir -p "$WORK/share"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/share/big.bin"
"$SHOAL" tracker --listen 127.0.0.1:0 > "$WORK/tracker.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/tracker.out" "listening on"
TRACKER=$(sed -n 's/^listening on //p' "$WORK/tracker.out")
"$SHOAL" --data-dir "$WORK/alice" --tracker "$TRACKER" node --name alice --share "$WORK/share" \
  --listen 127.0.0.1:0 > "$WORK/alice.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/alice.out" "peer id"
for _ in $(seq 1 200); do curl -sf "$TRACKER/v1/peers" | grep -q alice && break; sleep 0.1; done

GUI_RSS=(); GUI_T=(); GET_RSS=(); GET_T=()
for r in $(seq 1 "$RUNS"); do
  # The app: a fresh data dir whose config.toml names the tracker and the download folder.
  D="$WORK/gui$r"; mkdir -p "$D"
  printf 'tracker = "%s"\nname = "gui%s"\nlisten = "127.0.0.1:0"\ndownloads = "%s"\n' "$TRACKER" "$r" "$WORK/out-gui$r" > "$D/config.toml"
  s=$(date +%s%N)
  DISPLAY=$DISP LIBGL_ALWAYS_SOFTWARE=1 "$SHOAL" -q --data-dir "$D" gui --start --get alice:big.bin > "$WORK/gui$r.out" 2>&1 &
  GPID=$!; PIDS+=("$GPID")
  for _ in $(seq 1 6000); do [ -f "$WORK/out-gui$r/big.bin" ] && break; kill -0 "$GPID" 2>/dev/null || { cat "$WORK/gui$r.out" >&2; exit 1; }; sleep 0.05; done
  [ -f "$WORK/out-gui$r/big.bin" ] || { echo "the app did not finish the download" >&2; exit 1; }
  e=$(date +%s%N)
  GUI_RSS+=("$(( $(awk '/VmHWM/ { print $2 }' "/proc/$GPID/status") / 1024 ))")
  GUI_T+=("$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", (e - s) / 1e9 }')")
  kill "$GPID"; wait "$GPID" 2>/dev/null || true
  cmp -s "$WORK/out-gui$r/big.bin" "$WORK/share/big.bin" || { echo "the app saved wrong bytes" >&2; exit 1; }
  rm -rf "$WORK/out-gui$r"

  s=$(date +%s%N)
  /usr/bin/time -f "%M" -o "$WORK/rss" "$SHOAL" -q --data-dir "$WORK/cli$r" --tracker "$TRACKER" get alice:big.bin -o "$WORK/out-cli$r"
  e=$(date +%s%N)
  GET_RSS+=("$(( $(cat "$WORK/rss") / 1024 ))")
  GET_T+=("$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", (e - s) / 1e9 }')")
  cmp -s "$WORK/out-cli$r/big.bin" "$WORK/share/big.bin" || { echo "get saved wrong bytes" >&2; exit 1; }
  rm -rf "$WORK/out-cli$r"
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }'; }
echo "${SIZE_MIB} MiB download, $RUNS runs, interleaved"
echo "shoal gui: peak RSS (MiB) ${GUI_RSS[*]}  (median $(med "${GUI_RSS[@]}")); start to saved (s) ${GUI_T[*]}"
echo "shoal get: peak RSS (MiB) ${GET_RSS[*]}  (median $(med "${GET_RSS[@]}")); start to saved (s) ${GET_T[*]}"
