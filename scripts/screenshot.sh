#!/usr/bin/env bash
# Remakes the README's screenshot: runs `shoal gui` under Xvfb (Mesa's
# software GL) against a small demo network on 127.0.0.1 (a tracker, two
# peers sharing files, one of them slow so a download is under way) and
# saves the window as a PNG. Needs Xvfb and ImageMagick's `import`
# (Debian: xvfb imagemagick).
#
#   scripts/screenshot.sh [OUT=docs/screenshot.png]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/docs/screenshot.png}
for tool in Xvfb import; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install xvfb imagemagick)" >&2; exit 2; }
done
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin shoal
SHOAL="$ROOT/target/release/shoal"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-shot.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "timeout waiting for $2 in $1" >&2; exit 1; }

DISP=":$((90 + RANDOM % 100))"
Xvfb "$DISP" -screen 0 1180x800x24 -nolisten tcp > "$WORK/xvfb.out" 2>&1 & PIDS+=($!)

mkdir -p "$WORK/alice-share" "$WORK/bob-share" "$WORK/you-share"
head -c $((192 * 1024 * 1024)) /dev/urandom > "$WORK/alice-share/holiday-video.mp4"
head -c 734003 /dev/urandom > "$WORK/alice-share/quarterly-report.pdf"
printf 'Shoal demo notes\n' > "$WORK/alice-share/notes.txt"
printf 'demo passphrase\n' > "$WORK/pass"
printf 'the plans\n' > "$WORK/plans.txt"
"$SHOAL" -q --data-dir "$WORK/alice" encrypt "$WORK/plans.txt" --passphrase-file "$WORK/pass" -o "$WORK/alice-share/secret-plans.txt.age"
head -c 3355443 /dev/urandom > "$WORK/bob-share/beach.jpg"
head -c 2097152 /dev/urandom > "$WORK/bob-share/mountains.jpg"
printf 'hello\n' > "$WORK/you-share/readme.txt"

"$SHOAL" tracker --listen 127.0.0.1:0 > "$WORK/tracker.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/tracker.out" "listening on"
TRACKER=$(sed -n 's/^listening on //p' "$WORK/tracker.out")
"$SHOAL" --data-dir "$WORK/alice" --tracker "$TRACKER" node --name alice --share "$WORK/alice-share" \
  --listen 127.0.0.1:0 --max-upload-rate 8MiB > "$WORK/alice.out" 2>/dev/null & PIDS+=($!)
"$SHOAL" --data-dir "$WORK/bob" --tracker "$TRACKER" node --name bob --share "$WORK/bob-share" \
  --listen 127.0.0.1:0 > "$WORK/bob.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/alice.out" "peer id"
wait_for "$WORK/bob.out" "peer id"
for _ in $(seq 1 200); do curl -sf "$TRACKER/v1/peers" | grep -q alice && curl -sf "$TRACKER/v1/peers" | grep -q bob && break; sleep 0.1; done

mkdir -p "$WORK/you"
printf 'tracker = "%s"\nname = "you"\nshares = ["%s"]\nlisten = "127.0.0.1:0"\ndownloads = "%s"\n' \
  "$TRACKER" "$WORK/you-share" "$WORK/downloads" > "$WORK/you/config.toml"
DISPLAY=$DISP LIBGL_ALWAYS_SOFTWARE=1 "$SHOAL" -q --data-dir "$WORK/you" gui --start \
  --get alice:holiday-video.mp4 > "$WORK/gui.out" 2>&1 & PIDS+=($!)
# Wait for the window's first frames (not black any more), then give the
# download a few seconds so the shot shows it under way (a third or so).
START=$(date +%s)
PART="$WORK/downloads/holiday-video.mp4.part"
drawn=""
for _ in $(seq 1 300); do
  if [ -f "$PART" ]; then
    DISPLAY=$DISP import -window root "$WORK/probe.png"
    mean=$(convert "$WORK/probe.png" -format "%[fx:mean]" info:)
    if awk -v m="$mean" 'BEGIN { exit !(m > 0.04) }'; then drawn=1; break; fi
  fi
  sleep 0.1
done
[ -n "$drawn" ] || { echo "the window never drew; see $WORK/gui.out" >&2; cat "$WORK/gui.out" >&2; exit 1; }
while [ $(( $(date +%s) - START )) -lt 8 ]; do sleep 0.2; done
[ -f "$PART" ] || { echo "the download finished before the shot; slow alice down" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
DISPLAY=$DISP import -window root "$OUT"
echo "saved $OUT"
