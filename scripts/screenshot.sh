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
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "timeout waiting for $2 in $1" >&2; exit 1; }

DISP=":$((90 + RANDOM % 100))"
Xvfb "$DISP" -screen 0 1180x800x24 -nolisten tcp > "$WORK/xvfb.out" 2>&1 & PIDS+=($!)

mkdir -p "$WORK/alice-share" "$WORK/bob-share" "$WORK/you-share"
head -c $((96 * 1024 * 1024)) /dev/urandom > "$WORK/alice-share/holiday-video.mp4"
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
  --listen 127.0.0.1:0 --max-upload-rate 6MiB > "$WORK/alice.out" 2>/dev/null & PIDS+=($!)
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
# Under way: about a third of the video has arrived.
PART="$WORK/downloads/holiday-video.mp4.part"
for _ in $(seq 1 600); do
  [ "$(stat -c %s "$PART" 2>/dev/null || echo 0)" -gt 0 ] && \
    [ "$(du -k "$PART" | cut -f1)" -gt $((32 * 1024)) ] && break
  sleep 0.05
done
mkdir -p "$(dirname "$OUT")"
DISPLAY=$DISP import -window root "$OUT"
echo "saved $OUT"
