#!/usr/bin/env bash
# The web UI's costs, on 127.0.0.1 only:
#
# 1. events: a node runs TRANSFERS downloads at once (from a peer capped
#    so they stay running); its CPU is measured for SECS seconds with no
#    event follower, then with FOLLOWERS following /api/v1/events (as open
#    pages do); the difference is what the events cost. /api/v1/status is
#    timed meanwhile (is the page responsive?).
# 2. upload: a SIZE_MIB file uploaded to /api/v1/shares as the page sends
#    it (multipart, streamed; curl stands in for the browser, the bytes on
#    the wire are the same); the node's peak RSS (VmHWM) is read after.
# 3. download: the same SIZE_MIB file fetched RUNS times by `shoal get`
#    (its own data dir) and by the web UI's API (POST /api/v1/downloads to
#    a freshly started node, waited for until done), interleaved; wall
#    times from the command (or the POST) to the saved file.
#
#   bench/web.sh [TRANSFERS=50] [SECS=30] [FOLLOWERS=3] [SIZE_MIB=1024] [RUNS=3]
set -euo pipefail
TRANSFERS=${1:-50}
SECS=${2:-30}
FOLLOWERS=${3:-3}
SIZE=${4:-1024}
RUNS=${5:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin shoal
SHOAL="$ROOT/target/release/shoal"
TICKS=$(getconf CLK_TCK)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-web-bench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

wait_for() { for _ in $(seq 1 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "timeout waiting for $2 in $1" >&2; exit 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_mib() { awk '/^VmHWM:/ {print int($2 / 1024)}' "/proc/$1/status"; }
pct() { awk -v t="$1" -v hz="$TICKS" -v s="$2" 'BEGIN {printf "%.2f", 100 * t / hz / s}'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
key_of() { python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['api_key'])" "$1/control.json"; }
url_of() { python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['url'].rstrip('/'))" "$1/control.json"; }

"$SHOAL" tracker --listen 127.0.0.1:0 > "$WORK/tracker.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/tracker.out" "listening on"
TRACKER=$(sed -n 's/^listening on \(.*\)/\1/p' "$WORK/tracker.out" | head -1)

# --- 1. events with many transfers running ---------------------------------
mkdir -p "$WORK/slow-share" "$WORK/me-share"
for i in $(seq 1 "$TRANSFERS"); do head -c $((32 << 20)) /dev/zero | tr '\0' "$(printf '\\%03o' $((i % 200 + 32)))" > "$WORK/slow-share/f$i.bin"; done
"$SHOAL" --data-dir "$WORK/slow" --tracker "$TRACKER" node --share "$WORK/slow-share" --listen 127.0.0.1:0 --name slow --no-web --max-upload-rate 8MiB > "$WORK/slow.out" 2>/dev/null & PIDS+=($!)
"$SHOAL" --data-dir "$WORK/me" --tracker "$TRACKER" node --share "$WORK/me-share" --listen 127.0.0.1:0 --name me --web-listen 127.0.0.1:0 > "$WORK/me.out" 2>/dev/null & ME=$!; PIDS+=($ME)
wait_for "$WORK/slow.out" "peer id"
wait_for "$WORK/me.out" "peer id"
KEY=$(key_of "$WORK/me"); URL=$(url_of "$WORK/me")
api() { curl -sf -H "Authorization: Bearer $KEY" "$@"; }
for _ in $(seq 1 200); do "$SHOAL" --data-dir "$WORK/probe" --tracker "$TRACKER" peers 2>/dev/null | grep -q slow && break; sleep 0.1; done
for i in $(seq 1 "$TRANSFERS"); do
  api -H 'Content-Type: application/json' -d "{\"target\": \"slow:f$i.bin\", \"dir\": \"$WORK/dl\"}" "$URL/api/v1/downloads" > /dev/null
done
running() { api "$URL/api/v1/transfers" | python3 -c "import json,sys;print(sum(t['state']=='running' for t in json.load(sys.stdin)))"; }
sleep 5
echo "events: $(running) of $TRANSFERS transfers running"
status_times() {  # N timings of GET /api/v1/status, ms
  for _ in $(seq 1 "$1"); do curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $KEY" "$URL/api/v1/status"; sleep 0.2; done | awk '{printf "%.2f ", $1 * 1000}'
}
C0=$(cpu_ticks $ME); T0=$(now)
QUIET_MS=$(status_times $((SECS * 5 / 2)))
C1=$(cpu_ticks $ME); T1=$(now)
FPIDS=()
F0=$(now)
for f in $(seq 1 "$FOLLOWERS"); do
  curl -sN -H "Authorization: Bearer $KEY" "$URL/api/v1/events" > "$WORK/events$f.txt" & FPIDS+=($!); PIDS+=($!)
done
sleep 1
C2=$(cpu_ticks $ME); T2=$(now)
FOLLOW_MS=$(status_times $((SECS * 5 / 2)))
C3=$(cpu_ticks $ME); T3=$(now)
for p in "${FPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
S1=$(awk -v a="$T0" -v b="$T1" 'BEGIN {print b - a}'); S2=$(awk -v a="$T2" -v b="$T3" 'BEGIN {print b - a}')
Q=$(pct $((C1 - C0)) "$S1"); F=$(pct $((C3 - C2)) "$S2")
echo "events: $(running) still running at the end"
echo "events: node cpu over ${S1}s without followers ${Q}% of a core; over ${S2}s with $FOLLOWERS followers ${F}% (difference $(awk -v a="$Q" -v b="$F" 'BEGIN {printf "%.2f", b - a}') points)"
PROGRESS=$(grep -c '^event: progress' "$WORK/events1.txt" || true)
FOLLOWED=$(awk -v a="$F0" -v b="$T3" 'BEGIN {printf "%.1f", b - a}')
MOVES=$(grep '^data: \[' "$WORK/events1.txt" | python3 -c "import json,sys;print(sum(len(json.loads(l[6:])) for l in sys.stdin))")
echo "events: one follower got $PROGRESS progress batches in ${FOLLOWED}s ($(awk -v n="$PROGRESS" -v s="$FOLLOWED" 'BEGIN {printf "%.1f", n / s}')/s), $MOVES transfer updates ($(awk -v n="$MOVES" -v s="$FOLLOWED" -v t="$TRANSFERS" 'BEGIN {printf "%.2f", n / s / t}')/s per transfer)"
echo "events: GET /api/v1/status median $(echo "$QUIET_MS" | median) ms without followers, $(echo "$FOLLOW_MS" | median) ms with"
for t in $(api "$URL/api/v1/transfers" | python3 -c "import json,sys;print(' '.join(str(t['id']) for t in json.load(sys.stdin)))"); do
  api -X POST "$URL/api/v1/transfers/$t/cancel" > /dev/null || true
done

# --- 2. a large upload --------------------------------------------------------
kill $ME; wait $ME 2>/dev/null || true
head -c $((SIZE << 20)) /dev/urandom > "$WORK/big.bin"
"$SHOAL" --data-dir "$WORK/up" --tracker "$TRACKER" node --share "$WORK/up-share" --listen 127.0.0.1:0 --name up --web-listen 127.0.0.1:0 > "$WORK/up.out" 2>/dev/null & UP=$!; PIDS+=($UP)
mkdir -p "$WORK/up-share"
wait_for "$WORK/up.out" "peer id"
KEY=$(key_of "$WORK/up"); URL=$(url_of "$WORK/up")
BEFORE=$(hwm_mib $UP)
T0=$(now)
api -F lock=plain -F "file=@$WORK/big.bin" "$URL/api/v1/shares" > /dev/null
T1=$(now)
cmp -s "$WORK/big.bin" "$WORK/up-share/big.bin" || { echo "upload: the shared file differs" >&2; exit 1; }
echo "upload: $SIZE MiB in $(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.2f", b - a}') s; node peak RSS $(hwm_mib $UP) MiB (before the upload: $BEFORE MiB)"
kill $UP; wait $UP 2>/dev/null || true
rm -rf "$WORK/up" "$WORK/up-share"
# The same from Chromium itself, when it is here (see crates/web/tests/browser.rs).
PLAYWRIGHT="$ROOT/crates/web/tests/browser/node_modules/playwright-core"
if command -v chromium >/dev/null && [ -d "$PLAYWRIGHT" ]; then
  mkdir -p "$WORK/up-share"
  "$SHOAL" --data-dir "$WORK/up" --tracker "$TRACKER" node --share "$WORK/up-share" --listen 127.0.0.1:0 --name up --web-listen 127.0.0.1:0 > "$WORK/up.out" 2>/dev/null & UP=$!; PIDS+=($UP)
  wait_for "$WORK/up.out" "peer id"
  URL=$(url_of "$WORK/up")
  BEFORE=$(hwm_mib $UP)
  SECS_UP=$(node "$ROOT/crates/web/tests/browser/upload.mjs" "$URL/" "$WORK/big.bin")
  cmp -s "$WORK/big.bin" "$WORK/up-share/big.bin" || { echo "upload: the shared file differs" >&2; exit 1; }
  echo "upload from Chromium: $SIZE MiB in $SECS_UP s; node peak RSS $(hwm_mib $UP) MiB (before the upload: $BEFORE MiB)"
  kill $UP; wait $UP 2>/dev/null || true
else
  echo "upload from Chromium: skipped (needs chromium and npm ci --prefix crates/web/tests/browser)"
fi

# --- 3. a large download: shoal get vs the web UI ---------------------------------
mkdir -p "$WORK/big-share" && mv "$WORK/big.bin" "$WORK/big-share/"
"$SHOAL" --data-dir "$WORK/src" --tracker "$TRACKER" node --share "$WORK/big-share" --listen 127.0.0.1:0 --name src --no-web > "$WORK/src.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/src.out" "peer id"
for _ in $(seq 1 200); do "$SHOAL" --data-dir "$WORK/probe" --tracker "$TRACKER" peers 2>/dev/null | grep -q src && break; sleep 0.1; done
# Each run has a fresh node and a fresh `get` (neither has the file yet,
# and neither is left offering it to the next run, which would give that
# run a second source). Both offer the pieces they have while they
# download, as a node and a plain `get` do.
GETS=""; WEBS=""
run_get() {
  rm -rf "$WORK/get-data" "$WORK/get-out"
  local t0 t1; t0=$(now)
  "$SHOAL" -q --data-dir "$WORK/get-data" --tracker "$TRACKER" get src:big.bin -o "$WORK/get-out"
  t1=$(now)
  GETS="$GETS $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')"
  cmp -s "$WORK/big-share/big.bin" "$WORK/get-out/big.bin" || { echo "download: get's copy differs" >&2; exit 1; }
  rm -rf "$WORK/get-data" "$WORK/get-out"
}
run_web() {
  rm -rf "$WORK/web" "$WORK/web-out"
  "$SHOAL" --data-dir "$WORK/web" --tracker "$TRACKER" node --share "$WORK/me-share" --listen 127.0.0.1:0 --name web --web-listen 127.0.0.1:0 > "$WORK/web.out" 2>/dev/null & WEB=$!; PIDS+=($WEB)
  wait_for "$WORK/web.out" "peer id"
  KEY=$(key_of "$WORK/web"); URL=$(url_of "$WORK/web")
  sleep "${SETTLE:-0}"
  # One process posts and then reads the event stream until the transfer
  # is done, as the page does (polling with a curl per 20 ms would cost
  # this 2-core machine more CPU than the download).
  WEBS="$WEBS $(python3 "$ROOT/bench/web_get.py" "$URL" "$KEY" src:big.bin "$WORK/web-out")"
  cmp -s "$WORK/big-share/big.bin" "$WORK/web-out/big.bin" || { echo "download: the web UI's copy differs" >&2; exit 1; }
  kill $WEB; wait $WEB 2>/dev/null || true
  rm -rf "$WORK/web" "$WORK/web-out"
}
# Which goes first alternates, and each removes its copy when done, so
# every run starts from the same disk (1 GiB writes dominate the noise).
for r in $(seq 1 "$RUNS"); do
  if [ $((r % 2)) = 1 ]; then run_get; run_web; else run_web; run_get; fi
done
echo "download $SIZE MiB, $RUNS runs interleaved"
echo "  shoal get: $GETS s  (median $(echo "$GETS" | median) s)"
echo "  web UI:    $WEBS s  (median $(echo "$WEBS" | median) s)"
