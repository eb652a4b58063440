#!/usr/bin/env bash
# Encrypt and decrypt SIZE MiB with Shoal (to a peer key: no scrypt), the
# Debian `age` tool (an X25519 key: no scrypt) and the seed's scheme
# (Python `cryptography` Fernet, key from PBKDF2 as the seed made it), on the
# same file and file system, interleaved, RUNS each. Reports median times,
# peak RSS, and checks every round trip byte for byte.
# Targets: Shoal at least as fast as age; peak RSS under 32 MiB.
#
#   bench/crypt.sh [SIZE_MIB=1024] [RUNS=3]
set -euo pipefail
SIZE_MIB=${1:-1024}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for tool in age age-keygen python3; do
  command -v "$tool" > /dev/null || { echo "$tool is not installed (apt-get install age python3-cryptography)" >&2; exit 1; }
done
python3 -c 'import cryptography' 2>/dev/null || { echo "python3-cryptography is not installed" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin shoal
SHOAL="$ROOT/target/release/shoal"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-crypt.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }'; }
# Runs a command under /usr/bin/time; appends seconds and peak RSS (MiB).
timed() {
  local t r
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@"
  read -r t r < "$WORK/time"
  echo "$t $((r / 1024))"
}

head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/plain"
ME=$("$SHOAL" --data-dir "$WORK/me" id)
age-keygen -o "$WORK/age.key" 2> /dev/null
AGE_R=$(age-keygen -y "$WORK/age.key")
cat > "$WORK/fernet.py" <<'PY'
import base64, sys
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
mode, src, dst = sys.argv[1:4]
kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=b"shareit_p2p_salt", iterations=100000)
f = Fernet(base64.urlsafe_b64encode(kdf.derive(b"password")))
data = open(src, "rb").read()
open(dst, "wb").write(f.encrypt(data) if mode == "enc" else f.decrypt(data))
PY

declare -A T R
add() { T[$1]+="$2 "; R[$1]+="$3 "; }
for _ in $(seq 1 "$RUNS"); do
  rm -f "$WORK"/ct* "$WORK"/pt*; sync
  read -r t r < <(timed "$SHOAL" -q --data-dir "$WORK/me" encrypt "$WORK/plain" --to "$ME" -o "$WORK/ct.shoal"); add shoal-enc "$t" "$r"
  read -r t r < <(timed "$SHOAL" -q --data-dir "$WORK/me" decrypt "$WORK/ct.shoal" -o "$WORK/pt.shoal"); add shoal-dec "$t" "$r"
  read -r t r < <(timed age -r "$AGE_R" -o "$WORK/ct.age" "$WORK/plain"); add age-enc "$t" "$r"
  read -r t r < <(timed age -d -i "$WORK/age.key" -o "$WORK/pt.age" "$WORK/ct.age"); add age-dec "$t" "$r"
  read -r t r < <(timed python3 "$WORK/fernet.py" enc "$WORK/plain" "$WORK/ct.fernet"); add seed-enc "$t" "$r"
  read -r t r < <(timed python3 "$WORK/fernet.py" dec "$WORK/ct.fernet" "$WORK/pt.fernet"); add seed-dec "$t" "$r"
  for p in shoal age fernet; do cmp -s "$WORK/plain" "$WORK/pt.$p" || { echo "$p: round trip differs" >&2; exit 1; }; done
done
# Once by passphrase too (its scrypt second included), for the round trip
# and the memory.
echo "a passphrase for the benchmark" > "$WORK/pw"
rm -f "$WORK"/ct* "$WORK"/pt*
read -r pe pr < <(timed "$SHOAL" -q --data-dir "$WORK/me" encrypt "$WORK/plain" --passphrase-file "$WORK/pw" -o "$WORK/ct.pw")
read -r pd dr < <(timed "$SHOAL" -q --data-dir "$WORK/me" decrypt "$WORK/ct.pw" --passphrase-file "$WORK/pw" -o "$WORK/pt.pw")
cmp -s "$WORK/plain" "$WORK/pt.pw" || { echo "passphrase: round trip differs" >&2; exit 1; }

echo "$SIZE_MIB MiB, $RUNS runs each, interleaved; seconds (median) and peak RSS (max)"
for k in shoal-enc age-enc seed-enc shoal-dec age-dec seed-dec; do
  # shellcheck disable=SC2086
  printf '%-10s runs (s): %-24s median %6.2f s  %7.1f MiB/s  peak RSS %5d MiB\n' "$k" "${T[$k]}" \
    "$(median ${T[$k]})" "$(awk -v m="$(median ${T[$k]})" -v s="$SIZE_MIB" 'BEGIN { print (m > 0) ? s / m : 0 }')" \
    "$(printf '%s\n' ${R[$k]} | sort -n | tail -1)"
done
echo "shoal by passphrase (scrypt included): encrypt $pe s (peak RSS $pr MiB), decrypt $pd s (peak RSS $dr MiB), round trip identical"
