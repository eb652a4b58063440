#!/usr/bin/env bash
# Remakes the README's web UI screenshots (docs/web-desktop.png at 1280 px,
# docs/web-phone.png at 390 px): runs the browser test, which drives
# Debian's Chromium through playwright-core against a real tracker and
# nodes on 127.0.0.1, with SHOAL_SCREENSHOTS set. Needs chromium and
# Node.js (Debian: chromium nodejs npm).
#
#   scripts/web-screenshots.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v chromium >/dev/null || { echo "needs chromium (apt-get install chromium)" >&2; exit 2; }
command -v npm >/dev/null || { echo "needs Node.js and npm (apt-get install nodejs npm)" >&2; exit 2; }
npm ci --prefix "$ROOT/crates/web/tests/browser" --no-audit --no-fund --silent
OUT=$(mktemp -d "${TMPDIR:-/tmp}/shoal-web-shots.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
SHOAL_SCREENSHOTS="$OUT" cargo test --quiet --manifest-path "$ROOT/Cargo.toml" -p shoal-web --test browser
mv "$OUT/desktop.png" "$ROOT/docs/web-desktop.png"
mv "$OUT/phone.png" "$ROOT/docs/web-phone.png"
echo "wrote docs/web-desktop.png and docs/web-phone.png"
