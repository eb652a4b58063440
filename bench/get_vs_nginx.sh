#!/usr/bin/env bash
# Downloads one random file from a Shoal node with `shoal get` and, in the
# same run and interleaved, from nginx over HTTPS with curl; both write to
# the same filesystem. Prints medians, throughput and peak RSS.
#
#   bench/get_vs_nginx.sh [SIZE_MIB=1024] [RUNS=5]
#
# COMPARE=/path/to/another/shoal adds that build's `get` to the same
# interleaved runs (to compare two versions of Shoal on one day).
#
# Needs: nginx, curl, openssl, GNU time (apt-get install nginx curl openssl time).
set -euo pipefail
SIZE_MIB=${1:-1024}
RUNS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for tool in nginx curl openssl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install nginx curl openssl time" >&2; exit 2; }
done
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin shoal
SHOAL="$ROOT/target/release/shoal"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-bench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
chmod 755 "$WORK"  # nginx workers run as another user
mkdir -p "$WORK"/{share,out,nginx/logs,nginx/tmp}
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/share/big.bin"

port_of() { sed -n 's/.*listening on [a-z]*:\/\/[^:]*:\([0-9]*\).*/\1/p' "$1" | head -1; }
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "timeout waiting for $2 in $1" >&2; cat "$1" >&2; exit 1; }

"$SHOAL" tracker --listen 127.0.0.1:0 > "$WORK/tracker.out" 2>/dev/null & PIDS+=($!)
wait_for "$WORK/tracker.out" "listening on"
TRACKER="http://127.0.0.1:$(port_of "$WORK/tracker.out")"
START=$(date +%s%N)
"$SHOAL" --data-dir "$WORK/node" --tracker "$TRACKER" node --share "$WORK/share" --listen 127.0.0.1:0 --name bench > "$WORK/node.out" 2>"$WORK/node.err" & NODE_PID=$!; PIDS+=($NODE_PID)
wait_for "$WORK/node.out" "peer id"
INDEX_MS=$(( ($(date +%s%N) - START) / 1000000 ))

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -keyout "$WORK/nginx/key.pem" -out "$WORK/nginx/cert.pem" 2>/dev/null
NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp; fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  sendfile on;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate $WORK/nginx/cert.pem; ssl_certificate_key $WORK/nginx/key.pem;
    ssl_protocols TLSv1.3;
    root $WORK/share;
  }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' & PIDS+=($!)
for _ in $(seq 1 100); do curl -ks -o /dev/null "https://127.0.0.1:$NGINX_PORT/" && break; sleep 0.05; done

CLIENT="$WORK/client"
"$SHOAL" --data-dir "$CLIENT" --tracker "$TRACKER" ls bench >/dev/null   # learn the peer once
declare -a SHOAL_S CURL_S GET_RSS OTHER_S
secs() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.3f", (e - s) / 1e9 }'; }
run_shoal() {
  rm -f "$WORK/out/big.bin"; sync
  s=$(date +%s%N)
  /usr/bin/time -f "%M" -o "$WORK/get.rss" "$SHOAL" -q --data-dir "$CLIENT" --tracker "$TRACKER" get bench:big.bin -o "$WORK/out"
  e=$(date +%s%N); SHOAL_S+=("$(secs "$s" "$e")"); GET_RSS+=("$(cat "$WORK/get.rss")")
  cmp -s "$WORK/out/big.bin" "$WORK/share/big.bin" || { echo "shoal get produced different bytes" >&2; exit 1; }
}
run_compare() {
  rm -f "$WORK/out/big.bin"; sync
  s=$(date +%s%N)
  "$COMPARE" -q --data-dir "$CLIENT" --tracker "$TRACKER" get bench:big.bin -o "$WORK/out"
  e=$(date +%s%N); OTHER_S+=("$(secs "$s" "$e")")
  cmp -s "$WORK/out/big.bin" "$WORK/share/big.bin" || { echo "$COMPARE produced different bytes" >&2; exit 1; }
}
for i in $(seq 1 "$RUNS"); do
  # The first download after curl's runs slower (its file's writeback), so
  # with COMPARE the two builds take turns going first.
  if [ -n "${COMPARE:-}" ] && [ $((i % 2)) -eq 0 ]; then
    run_compare; run_shoal
  else
    run_shoal
    if [ -n "${COMPARE:-}" ]; then run_compare; fi
  fi

  rm -f "$WORK/out/big.bin"; sync
  s=$(date +%s%N)
  curl -ksS --fail -o "$WORK/out/big.bin" "https://127.0.0.1:$NGINX_PORT/big.bin"
  e=$(date +%s%N); CURL_S+=("$(secs "$s" "$e")")
  cmp -s "$WORK/out/big.bin" "$WORK/share/big.bin" || { echo "curl produced different bytes" >&2; exit 1; }
done
NODE_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$NODE_PID/status")

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2] + a[NR/2+1]) / 2 }'; }
MS=$(median "${SHOAL_S[@]}"); MC=$(median "${CURL_S[@]}"); MR=$(median "${GET_RSS[@]}")
mbps() { awk -v s="$1" -v m="$SIZE_MIB" 'BEGIN { printf "%.0f", m / s }'; }
echo "file: ${SIZE_MIB} MiB random, ${RUNS} runs each, interleaved, loopback, $(nproc) cores"
echo "shoal get   runs (s): ${SHOAL_S[*]}"
echo "curl+nginx  runs (s): ${CURL_S[*]}"
[ -n "${COMPARE:-}" ] && echo "$COMPARE runs (s): ${OTHER_S[*]} (median $(median "${OTHER_S[@]}") s)"
echo "median: shoal get ${MS} s ($(mbps "$MS") MiB/s) | curl from nginx ${MC} s ($(mbps "$MC") MiB/s)"
MR=${MR%.*}; echo "peak RSS: shoal get median $((MR / 1024)) MiB (max $(( $(printf '%s\n' "${GET_RSS[@]}" | sort -n | tail -1) / 1024 )) MiB); node $((NODE_RSS_KB / 1024)) MiB"
echo "first start of the node (hashing ${SIZE_MIB} MiB, page cache warm): ${INDEX_MS} ms to 'listening'"
grep -o 'elapsed_ms=[0-9]*' "$WORK/node.err" | head -1 | sed 's/^/index scan: /'
